// Starts Swagger UI on the API docs page. A static file, not inline code, so the page keeps
// the portal's Content-Security-Policy (script-src 'self'). The schema URL comes from the
// page; the token typed into "Authorize" stays in the page's memory (never localStorage).
"use strict";

(function () {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.schemaUrl,
    domNode: root,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "BaseLayout",
    deepLinking: true,
    persistAuthorization: false,
    // Session requests from this page carry no CSRF token: use a token ("Authorize").
    withCredentials: false,
  });
})();
