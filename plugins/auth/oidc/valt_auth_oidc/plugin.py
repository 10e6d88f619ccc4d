"""Hook implementations of the ``oidc`` auth plugin."""

from valt_core.hookspecs import hookimpl

from .backend import OidcAuthBackend


@hookimpl
def valt_register_auth_backends():
    """Register the OpenID Connect sign-in backend."""
    return [OidcAuthBackend]
