"""Hook implementations of the ``ldap`` auth plugin."""

from valt_core.hookspecs import hookimpl

from .backend import LdapAuthBackend


@hookimpl
def valt_register_auth_backends():
    """Register the LDAP directory backend."""
    return [LdapAuthBackend]
