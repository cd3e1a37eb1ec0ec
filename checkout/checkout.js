/*! piivault checkout.js: sends a checkout form's shipping block straight
 * from the customer's browser to piivault, so the storefront's servers
 * never see it. No dependencies, no eval; works under a strict CSP that
 * allows piivault's origin in script-src and connect-src.
 *
 *   PiiVault.checkout({
 *     form: document.getElementById("shipping-form"), // inputs carry data-piivault="name", "email",
 *                                                     // "phone", "address.line1", "address.line2",
 *                                                     // "address.city", "address.state",
 *                                                     // "address.postal_code", "address.country"
 *     publishableKey: "pk_...",       // from `piivault clients add NAME --origin ...`
 *     clientSecret: "pcs_..._secret_...", // from POST /v1/checkout/sessions, made by your server
 *     onSuccess: function (r) {},     // r = {order_id, status}: all the page learns
 *     onError: function (e) {}        // e = {code, message, fields: ["address.postal_code", ...]}
 *   });
 */
(function (global) {
  "use strict";
  var script = document.currentScript;
  var base = script && script.src ? new URL(script.src).origin : "";

  function fieldsOf(form) {
    var shipping = { address: {} };
    var inputs = form.querySelectorAll("[data-piivault]");
    for (var i = 0; i < inputs.length; i++) {
      var path = inputs[i].getAttribute("data-piivault");
      var value = String(inputs[i].value || "").trim();
      if (path.indexOf("address.") === 0) {
        shipping.address[path.slice(8)] = value;
      } else {
        shipping[path] = value;
      }
    }
    return shipping;
  }

  function mark(form, fields) {
    var inputs = form.querySelectorAll("[data-piivault]");
    for (var i = 0; i < inputs.length; i++) {
      var bad = fields.indexOf(inputs[i].getAttribute("data-piivault")) >= 0;
      if (bad) { inputs[i].setAttribute("aria-invalid", "true"); } else { inputs[i].removeAttribute("aria-invalid"); }
    }
  }

  function checkout(opts) {
    var form = opts.form;
    var url = (opts.url || base) + "/v1/checkout/shipping?key=" + encodeURIComponent(opts.publishableKey);
    var busy = false;
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      if (busy) { return; }
      busy = true;
      var body = JSON.stringify({ client_secret: opts.clientSecret, shipping: fieldsOf(form) });
      fetch(url, {
        method: "POST", mode: "cors", credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer",
        headers: { "Content-Type": "application/json" },
        body: body
      }).then(function (resp) {
        return resp.json().catch(function () { return {}; }).then(function (data) {
          busy = false;
          if (resp.status === 201 || resp.status === 200) {
            mark(form, []);
            form.reset();
            if (opts.onSuccess) { opts.onSuccess({ order_id: data.order_id, status: data.status }); }
            return;
          }
          var err = data.error || {};
          var fields = (err.fields || []).map(function (f) { return f.replace(/^shipping\./, ""); });
          mark(form, fields);
          if (opts.onError) { opts.onError({ code: err.code || "network_error", message: err.message || "The request failed.", fields: fields }); }
        });
      }, function () {
        busy = false;
        if (opts.onError) { opts.onError({ code: "network_error", message: "piivault could not be reached. Try again.", fields: [] }); }
      });
    });
  }

  global.PiiVault = { checkout: checkout };
})(window);
