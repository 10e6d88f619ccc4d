"""The ``local`` auth backend: argon2id hashes checked in a worker thread."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from valt_core.auth import AuthBackend, Identity

from .config import LocalAuthConfig


class LocalAuthBackend(AuthBackend):
    """Passwords hashed with argon2id and stored in Valt's users table."""

    name = "local"
    Config = LocalAuthConfig
    manages_passwords = True

    def __init__(self, config: LocalAuthConfig) -> None:
        super().__init__(config)
        self.hasher = PasswordHasher(
            time_cost=config.time_cost,
            memory_cost=config.memory_cost_kib,
            parallelism=config.parallelism,
            type=Type.ID,
        )
        # Verifying against this for unknown users costs the same time as a real check.
        self._decoy_hash = self.hasher.hash("decoy password for unknown users")

    async def check_password(self, username: str, password: str, stored_hash: str | None) -> Identity | None:
        """Verify ``password`` against the stored argon2id hash (off the event loop)."""
        ok = await asyncio.to_thread(self._verify, stored_hash or self._decoy_hash, password)
        return Identity(username=username) if ok and stored_hash else None

    def _verify(self, stored_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def hash_password(self, password: str) -> str:
        """An argon2id hash of ``password`` with this backend's cost parameters."""
        return self.hasher.hash(password)

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when the stored hash used other cost parameters than the configured ones."""
        try:
            return self.hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return False
