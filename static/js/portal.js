/* PIM Portal: two small enhancements every page gets from base.html (no framework, nothing
   from a CDN; the pages work without them).
   - Tables stack into labelled rows on small screens: each body cell gets its column's header
     as data-label, which portal.css shows before the cell's content.
   - After a refused form, focus moves to the first error: the first invalid field (Django
     marks it aria-invalid), else the form's or the page's error message. */
(function () {
  "use strict";

  function headersOf(table) {
    var head = table.tHead && table.tHead.rows[0];
    var headers = [];
    if (!head) {
      return headers;
    }
    Array.prototype.forEach.call(head.cells, function (cell) {
      for (var i = 0; i < (cell.colSpan || 1); i += 1) {
        headers.push(cell.textContent.replace(/\s+/g, " ").trim());
      }
    });
    return headers;
  }

  function labelCells() {
    document.querySelectorAll("main table").forEach(function (table) {
      var headers = headersOf(table);
      if (!headers.length) {
        return;
      }
      Array.prototype.forEach.call(table.tBodies, function (body) {
        Array.prototype.forEach.call(body.rows, function (row) {
          var column = 0;
          Array.prototype.forEach.call(row.cells, function (cell) {
            if ((cell.colSpan || 1) === 1 && headers[column] && !cell.hasAttribute("data-label")) {
              cell.setAttribute("data-label", headers[column]);
            }
            column += cell.colSpan || 1;
          });
        });
      });
    });
  }

  function focusFirstError() {
    var target = document.querySelector("main [aria-invalid='true']");
    if (!target) {
      target = document.querySelector(
        "main .form-errors, main .field-errors, main .errorlist, main .messages .error"
      );
      if (target && !target.hasAttribute("tabindex")) {
        target.setAttribute("tabindex", "-1");
      }
    }
    if (target) {
      target.focus();
      if (target.scrollIntoView) {
        target.scrollIntoView({ block: "center" });
      }
    }
  }

  function ready() {
    labelCells();
    focusFirstError();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
