"""The transport contract."""

from .base import Transport

__all__ = ["Transport"]
