"""Valt's ``saml`` auth plugin: SAML 2.0 single sign-on, Valt being the service provider."""
