"""Hook implementations of the ``local`` auth plugin."""

from valt_core.hookspecs import hookimpl

from .backend import LocalAuthBackend


@hookimpl
def valt_register_auth_backends():
    """Register the argon2id password backend."""
    return [LocalAuthBackend]
