"""Valt's ``oidc`` auth plugin: people sign in at an OpenID Connect provider (Keycloak, Entra ID,
Okta, ...) through the authorization code flow with PKCE."""
