"""The recording storage contract."""

from .base import PendingUploads, StorageBackend, StorageUsage, StorageWriter, check_key

__all__ = ["PendingUploads", "StorageBackend", "StorageUsage", "StorageWriter", "check_key"]
