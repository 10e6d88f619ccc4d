"""The authentication contract and the core's access control."""

from .base import AuthBackend, Identity

__all__ = ["AuthBackend", "Identity"]
