// The demo shop's own script: it wires the form to piivault's checkout.js
// and tells the shop's server the order id once piivault has stored it.
(function () {
  "use strict";
  var form = document.getElementById("shipping-form");
  var errors = document.getElementById("errors");
  PiiVault.checkout({
    form: form,
    publishableKey: form.getAttribute("data-key"),
    clientSecret: form.getAttribute("data-secret"),
    onSuccess: function (r) {
      fetch("/complete", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ order_id: r.order_id, status: r.status }) });
      form.hidden = true;
      errors.hidden = true;
      document.getElementById("done-order").textContent = r.order_id;
      document.getElementById("done-status").textContent = r.status;
      document.getElementById("done").hidden = false;
    },
    onError: function (e) {
      errors.textContent = e.fields.length ? "Please check: " + e.fields.join(", ") : e.message;
      errors.hidden = false;
    }
  });
})();
