"""Valt's ``nas`` storage plugin: recordings on an SMB share or a mounted NAS path."""
