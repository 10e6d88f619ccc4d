"""The authentication contract and the core's access control."""

from ..errors import DirectoryUnavailable
from .base import AuthBackend, Identity, SignInRefused, SignInStart

__all__ = ["AuthBackend", "DirectoryUnavailable", "Identity", "SignInRefused", "SignInStart"]
