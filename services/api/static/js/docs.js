// Swagger UI over this server's own OpenAPI document, in its base layout (no top bar, no
// validator badge: the standalone preset that has them is not loaded). validatorUrl: null
// keeps the document from being sent to swagger.io's validator should that ever change.
window.ui = window.SwaggerUIBundle({
  url: "/v1/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  tryItOutEnabled: false,
  persistAuthorization: false,
});
