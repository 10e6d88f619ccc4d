"""The auth contract (``valt.auth``): how a backend identifies a person.

The core owns users, groups, lockout, sessions and tokens; a backend only answers "is this the
person they claim to be", from its own store (argon2 hashes for ``local``, a directory for
``ldap``) or from a provider the browser is sent to (``oidc``, ``saml``).

Two ways to sign in, and a backend offers either or both:

- a password checked by :meth:`AuthBackend.check_password` (the login form and the API);
- a redirect sign-in (single sign-on): a backend with a :attr:`AuthBackend.sign_in_label` gets a
  "Sign in with ..." button on the login page. The core owns the routes
  (``/auth/sso/NAME/start``, ``/auth/sso/NAME/callback``, ``/auth/sso/NAME/metadata``): it keeps
  the flow's state server-side for ten minutes, makes it usable once, signs the person in and sets
  the session cookie. The backend only speaks its protocol: :meth:`AuthBackend.begin_sign_in`
  says where to send the browser, :meth:`AuthBackend.finish_sign_in` checks what came back.

A directory backend may also put people in Valt groups (:attr:`Identity.groups`) and keep them
current between sign-ins (:meth:`AuthBackend.look_up`, run by the core's scheduled sync).
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Mapping, Sequence
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
    groups: tuple[str, ...] | None = None
    """Names of the Valt groups the backend puts this person in, already mapped from the
    directory's or provider's own groups; ``None`` when the backend does not manage groups.
    The core makes the person's memberships that came from this backend exactly these (names of
    groups that do not exist are ignored); memberships an admin gave by hand are kept."""


@dataclass(frozen=True)
class SignInStart:
    """Where :meth:`AuthBackend.begin_sign_in` sends the browser, and what it needs back."""

    url: str
    """The provider's URL the browser is redirected to."""
    flow: Mapping[str, str]
    """What :meth:`AuthBackend.finish_sign_in` will need (a PKCE verifier, a nonce, a request
    id). Kept server-side by the core, never sent to the browser, deleted on first use."""


class SignInRefused(Exception):
    """A redirect sign-in that must not succeed (a bad signature, a wrong audience, an error
    from the provider). ``message`` is shown to the person and audited: say what went wrong in
    words, and never include a token, a code or a secret."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthBackend(ABC):
    """Base class of every auth backend."""

    name: ClassVar[str]
    """Short name used in settings (``local``, ``ldap``, ``oidc``)."""
    Config: ClassVar[type[BaseModel]]
    """Pydantic model of the backend's options (``[auth.backend_options.NAME]``)."""
    manages_passwords: ClassVar[bool] = False
    """True when passwords are set and stored through Valt (the backend hashes them)."""
    checks_passwords: ClassVar[bool] = True
    """False for a backend that only signs people in by redirect (``oidc``, ``saml``)."""
    sign_in_label: ClassVar[str | None] = None
    """Set (e.g. "Sign in with Contoso") for a backend with a redirect sign-in: the login page
    shows it as a button. Instances may override it from their settings."""
    callback_methods: ClassVar[tuple[str, ...]] = ("GET",)
    """HTTP methods the provider uses to come back (SAML's POST binding needs ``POST``)."""
    binds_browser: ClassVar[bool] = True
    """True: the callback must come from the browser that started the flow (a SameSite=Lax
    cookie proves it, which stops login CSRF). A provider that comes back by a cross-site POST
    (SAML) cannot carry that cookie; such a backend sets False and must bind the answer to its
    request itself (SAML's InResponseTo)."""

    def __init__(self, config: BaseModel) -> None:
        self.config = config

    async def check_password(
        self, username: str, password: str, stored_hash: str | None
    ) -> Identity | None:
        """Return the identity if ``password`` is right for ``username``, else ``None``.

        ``stored_hash`` is the hash Valt keeps for that user (``None`` for an unknown user or
        one whose password lives elsewhere). Must take about as long for an unknown user as for
        a known one, so timing does not reveal which names exist. The default (for backends
        with :attr:`checks_passwords` False) vouches for no one.
        """
        return None

    async def begin_sign_in(self, callback_url: str, state: str) -> SignInStart:
        """Start a redirect sign-in: the provider URL to send the browser to, and the flow.

        ``callback_url`` is the absolute URL the provider must send the browser back to;
        ``state`` is the core's random value for this flow, which must come back with the answer
        (OIDC's ``state`` parameter, SAML's ``RelayState``) so the core can find the flow.
        """
        raise NotSupported(f"auth backend {self.name!r} has no redirect sign-in")

    async def finish_sign_in(
        self, callback_url: str, params: Mapping[str, str], flow: Mapping[str, str]
    ) -> Identity:
        """Check what the provider sent back (the callback's query or form ``params``) against
        the ``flow`` :meth:`begin_sign_in` made, and return who signed in.

        Raise :class:`SignInRefused` for anything that must not sign someone in.
        """
        raise NotSupported(f"auth backend {self.name!r} has no redirect sign-in")

    async def metadata(self, callback_url: str) -> tuple[str, bytes] | None:
        """A document the provider's admin needs (SAML SP metadata): ``(media type, body)``,
        served at ``/auth/sso/NAME/metadata``; ``None`` (the default) when there is none."""
        return None

    async def sign_out_url(self, identity_hint: str, return_url: str) -> str | None:
        """Where to send the browser after Valt's own sign-out to end the provider's session
        too (OIDC's end_session_endpoint), or ``None`` (the default) to stay on Valt."""
        return None

    async def look_up(self, usernames: Sequence[str]) -> dict[str, Identity] | None:
        """The directory's current view of these people, for the scheduled sync.

        Return an identity (with groups) for each one still in the directory and nothing for
        those gone (the core disables them); ``None`` (the default) when this backend cannot
        look people up, so the sync leaves its users alone.
        """
        return None

    def hash_password(self, password: str) -> str:
        """Hash ``password`` for storage; only for backends that manage passwords."""
        raise NotSupported(f"auth backend {self.name!r} does not store passwords")

    def needs_rehash(self, stored_hash: str) -> bool:
        """True when ``stored_hash`` was made with weaker parameters than the current ones."""
        return False
