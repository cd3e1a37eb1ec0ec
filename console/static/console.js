// piivault console: small progressive enhancements, no dependencies.
// Everything works without it, except that a revealed address then stays
// on screen until the page is left.
(function () {
  "use strict";

  // A revealed address hides itself again after data-hide-after seconds.
  document.querySelectorAll("[data-hide-after]").forEach(function (el) {
    var left = parseInt(el.getAttribute("data-hide-after"), 10);
    if (!left) { return; }
    var counter = el.querySelector("[data-countdown]");
    var note = el.parentElement.querySelector(".hidden-note");
    var timer = setInterval(function () {
      left -= 1;
      if (counter) { counter.textContent = String(left); }
      if (left <= 0) {
        clearInterval(timer);
        while (el.firstChild) { el.removeChild(el.firstChild); }
        el.hidden = true;
        if (note) { note.hidden = false; }
      }
    }, 1000);
  });

  // "Select all" checkboxes.
  document.querySelectorAll("[data-select-all]").forEach(function (box) {
    var name = box.getAttribute("data-select-all");
    box.addEventListener("change", function () {
      document.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (b) {
        b.checked = box.checked;
      });
    });
  });

  // Print buttons.
  document.querySelectorAll("[data-print]").forEach(function (b) {
    b.addEventListener("click", function () { window.print(); });
  });
})();
