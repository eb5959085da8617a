// Starts Swagger UI on /docs. It is a file, not an inline script, so that
// the page's Content-Security-Policy can refuse every inline script.
"use strict";

// The reference only shows the API: without "Try it out" it sends no request
// of its own, and the sign-in controls, which would only feed "Try it out",
// are hidden. Their flow would leave this page for the identity provider.
const HideSignIn = () => ({
  components: {
    authorizeBtn: () => null,
    authorizeOperationBtn: () => null,
  },
});

window.ui = SwaggerUIBundle({
  // Relative to /docs, so /openapi.yaml on the same server.
  url: "openapi.yaml",
  dom_id: "#swagger-ui",
  // The plain layout: the standalone one adds a bar for loading other specs.
  layout: "BaseLayout",
  deepLinking: true,
  displayOperationId: true,
  docExpansion: "list",
  supportedSubmitMethods: [],
  // The default sends the spec to validator.swagger.io for a badge.
  validatorUrl: null,
  plugins: [HideSignIn],
});
