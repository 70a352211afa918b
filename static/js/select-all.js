// A "choose all" box for a table of checkboxes: <input type="checkbox" data-select-all="name">
// ticks or clears every box named `name` in the same form.
(function () {
  "use strict";
  document.querySelectorAll("input[data-select-all]").forEach(function (all) {
    var boxes = all.form.querySelectorAll('input[type=checkbox][name="' + all.dataset.selectAll + '"]');
    all.hidden = false;
    all.addEventListener("change", function () {
      boxes.forEach(function (box) {
        box.checked = all.checked;
      });
    });
  });
})();
