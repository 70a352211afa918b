/* PIM Portal: progressive enhancement for the administration forms (/manage/roles/).
   - Pickers (inputs with data-principal-search): suggestions from the portal's own search
     endpoint, shown as a <datalist>. Without this script one types the name exactly.
   - The role-settings editor: the "who approves this role" line follows the form as it is
     filled in (asked of the portal, which knows the owners and the fallback).
   No third-party code, no inline script (the Content-Security-Policy forbids it). */
(function () {
  "use strict";

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      var args = arguments;
      clearTimeout(timer);
      timer = setTimeout(function () { fn.apply(null, args); }, ms);
    };
  }

  function pickerSetUp(input) {
    var listId = input.getAttribute("list") || ("suggestions-" + input.name);
    var list = document.getElementById(listId);
    if (!list) {
      list = document.createElement("datalist");
      list.id = listId;
      input.insertAdjacentElement("afterend", list);
      input.setAttribute("list", listId);
    }
    var url = input.dataset.searchUrl;
    var kind = input.dataset.principalSearch;
    var ask = debounce(function () {
      // Several names may be typed, separated by commas: suggest for the last one.
      var parts = input.value.split(",");
      var text = parts[parts.length - 1].trim();
      if (text.length < 2) { return; }
      var query = "?kind=" + encodeURIComponent(kind) + "&q=" + encodeURIComponent(text);
      fetch(url + query, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (response) { return response.ok ? response.json() : { results: [] }; })
        .then(function (data) {
          var before = parts.slice(0, -1).map(function (p) { return p.trim(); }).filter(Boolean);
          list.textContent = "";
          data.results.forEach(function (result) {
            var option = document.createElement("option");
            option.value = before.concat([result.value]).join(", ");
            option.label = result.label;
            option.textContent = result.label;
            list.appendChild(option);
          });
        })
        .catch(function () { /* suggestions are a convenience: typing still works */ });
    }, 200);
    input.addEventListener("input", ask);
  }

  function whoApprovesSetUp(form) {
    var line = document.getElementById("who-approves");
    var url = form.dataset.whoApprovesUrl;
    if (!line || !url) { return; }
    var update = debounce(function () {
      var params = new URLSearchParams();
      form.querySelectorAll("input[name=approvers]:checked, input[name=approver_groups]:checked")
        .forEach(function (box) { params.append(box.name, box.value); });
      ["approvers_add", "approver_groups_add"].forEach(function (name) {
        var field = form.elements.namedItem(name);
        if (field) { params.append(name, field.value); }
      });
      var approval = form.elements.namedItem("require_approval");
      if (approval && approval.checked) { params.append("require_approval", "on"); }
      fetch(url + "?" + params.toString(), { credentials: "same-origin" })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (data) {
          if (data) { line.textContent = ""; var strong = document.createElement("strong"); strong.textContent = data.text; line.appendChild(strong); }
        })
        .catch(function () {});
    }, 300);
    form.addEventListener("change", update);
    form.addEventListener("input", function (event) {
      if (event.target.name === "approvers_add" || event.target.name === "approver_groups_add") { update(); }
    });
  }

  document.querySelectorAll("input[data-principal-search]").forEach(pickerSetUp);
  var settingsForm = document.getElementById("settings-form");
  if (settingsForm) { whoApprovesSetUp(settingsForm); }
})();
