"""The auth contract (``valt.auth``): how a backend identifies a person.

The core owns users, roles, lockout and tokens; a backend only answers "is this the person
they claim to be", from its own store (argon2 hashes for ``local``, a directory for ``ldap``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel

from ..errors import NotSupported


@dataclass(frozen=True)
class Identity:
    """A person a backend vouched for."""

    username: str
    display_name: str = ""
    email: str = ""


class AuthBackend(ABC):
    """Base class of every auth backend."""

    name: ClassVar[str]
    """Short name used in settings (``local``, ``ldap``, ``oidc``)."""
    Config: ClassVar[type[BaseModel]]
    """Pydantic model of the backend's options (``[auth.backend_options.NAME]``)."""
    manages_passwords: ClassVar[bool] = False
    """True when passwords are set and stored through Valt (the backend hashes them)."""

    def __init__(self, config: BaseModel) -> None:
        self.config = config

    @abstractmethod
    async def check_password(
        self, username: str, password: str, stored_hash: str | None
    ) -> Identity | None:
        """Return the identity if ``password`` is right for ``username``, else ``None``.

        ``stored_hash`` is the hash Valt keeps for that user (``None`` for an unknown user or
        one whose password lives elsewhere). Must take about as long for an unknown user as for
        a known one, so timing does not reveal which names exist.
        """

    def hash_password(self, password: str) -> str:
        """Hash ``password`` for storage; only for backends that manage passwords."""
        raise NotSupported(f"auth backend {self.name!r} does not store passwords")

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when ``stored_hash`` was made with weaker parameters than the current ones."""
        return False
