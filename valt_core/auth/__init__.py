"""The authentication contract and the core's access control."""

from .base import AuthBackend, Identity, SignInRefused, SignInStart

__all__ = ["AuthBackend", "Identity", "SignInRefused", "SignInStart"]
