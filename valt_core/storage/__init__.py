"""The recording storage contract."""

from .base import StorageBackend, StorageUsage, StorageWriter, check_key

__all__ = ["StorageBackend", "StorageUsage", "StorageWriter", "check_key"]
