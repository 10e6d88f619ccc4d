"""Hook implementations of the ``saml`` auth plugin."""

from valt_core.hookspecs import hookimpl

from .backend import SamlAuthBackend


@hookimpl
def valt_register_auth_backends():
    """Register the SAML 2.0 service-provider backend."""
    return [SamlAuthBackend]
