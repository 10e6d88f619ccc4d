"""The ``ldap`` auth backend: search-and-bind (or bind by DN template) with ldap3, in a thread.

ldap3 is synchronous; every directory request runs in a worker thread under the configured
timeout, so a slow directory holds a thread, never the event loop. The name typed is escaped
before it goes into a filter (RFC 4515) or a DN (RFC 4514): a name like ``*)(uid=*`` matches
nobody instead of everybody.
"""

from __future__ import annotations

import asyncio
import math
import re
import ssl
from collections.abc import Sequence

import ldap3
from ldap3.core.exceptions import LDAPCertificateError, LDAPException
from ldap3.utils.conv import escape_filter_chars
from ldap3.utils.dn import escape_rdn

from valt_core.auth import AuthBackend, DirectoryUnavailable, Identity

from .config import LdapAuthConfig


def normal_dn(dn: str) -> str:
    """``dn`` as directories compare DNs: case, and spaces around ``,`` and ``=``, aside.

    Splits only on unescaped commas (``cn=Smith\\, J.`` is one RDN).
    """
    rdns = re.split(r"(?<!\\),", dn)
    return ",".join("=".join(part.strip() for part in rdn.split("=", 1)).lower() for rdn in rdns)


class LdapAuthBackend(AuthBackend):
    """People and their groups from an LDAP directory."""

    name = "ldap"
    Config = LdapAuthConfig

    def __init__(self, config: LdapAuthConfig) -> None:
        super().__init__(config)
        self.config: LdapAuthConfig = config
        self._groups = {normal_dn(dn): group for dn, group in config.group_map.items()}
        self._tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, version=ssl.PROTOCOL_TLS_CLIENT,
                              ca_certs_file=str(config.ca_file) if config.ca_file else None)

    async def check_password(self, username: str, password: str, stored_hash: str | None) -> Identity | None:
        """The person if the directory accepts ``password`` for ``username``, else ``None``."""
        if not username or not password:
            # An empty password is an "unauthenticated bind", which directories accept: never a sign-in.
            return None
        return await asyncio.to_thread(self._authenticate, username, password)

    async def look_up(self, usernames: Sequence[str]) -> dict[str, Identity] | None:
        """Those of ``usernames`` still in the directory, with their groups (needs ``bind_dn``)."""
        if self.config.bind_dn is None:
            return None
        return await asyncio.to_thread(self._look_up, list(usernames))

    # -- in the worker thread ----------------------------------------------------------------

    def _connect(self, dn: str, password: str) -> ldap3.Connection | None:
        """A connection bound as ``dn``; ``None`` when the directory refuses the password.

        Tries each URL in turn; raises :class:`DirectoryUnavailable` when none answers.
        """
        problems = []
        for url in self.config.urls:
            server = ldap3.Server(url, use_ssl=url.lower().startswith("ldaps://"), tls=self._tls,
                                  connect_timeout=self.config.timeout_s, get_info=ldap3.NONE)
            conn = ldap3.Connection(server, user=dn, password=password, read_only=True,
                                    # ldap3 packs this into a socket option: whole seconds only.
                                    receive_timeout=math.ceil(self.config.timeout_s), raise_exceptions=False)
            try:
                conn.open()
                if self.config.start_tls and not server.ssl and not conn.start_tls():
                    problems.append(f"{url}: StartTLS refused: {(conn.result or {}).get('description', '')}")
                    _close(conn)
                    continue
                if conn.bind():
                    return conn
                result = conn.result or {}
            except LDAPCertificateError:
                problems.append(f"{url}: the directory's certificate does not name {server.host!r} (host names "
                                "are matched, not IP addresses: use the name the certificate carries)")
                _close(conn)
                continue
            except LDAPException as err:
                problems.append(f"{url}: {_reason(err)}")
                _close(conn)
                continue
            _close(conn)
            if result.get("description") == "invalidCredentials":
                return None
            why = f"{result.get('description') or 'bind refused'} {result.get('message') or ''}".strip()
            problems.append(f"{url}: {why}")
        raise DirectoryUnavailable("the directory cannot be reached: " + "; ".join(problems))

    def _attributes(self) -> list[str]:
        c = self.config
        return sorted({c.username_attribute, c.display_name_attribute, c.email_attribute, c.group_attribute})

    def _search_person(self, conn: ldap3.Connection, username: str):
        query = self.config.user_filter.replace("{username}", escape_filter_chars(username))
        conn.search(self.config.user_base, query, ldap3.SUBTREE, attributes=self._attributes(), size_limit=2)
        # Two people answering one name is a directory mistake; signing in as either would be a guess.
        return conn.entries[0] if len(conn.entries) == 1 else None

    def _authenticate(self, username: str, password: str) -> Identity | None:
        c = self.config
        if c.bind_dn is not None:
            service = self._service()
            try:
                entry = self._search_person(service, username)
            finally:
                _close(service)
            if entry is None:
                return None
            person = self._connect(entry.entry_dn, password)
            if person is None:
                return None
            _close(person)
            return self._identity(entry, username)
        dn = c.user_dn_template.replace("{username}", escape_rdn(username))  # type: ignore[union-attr]
        person = self._connect(dn, password)
        if person is None:
            return None
        try:
            person.search(dn, "(objectClass=*)", ldap3.BASE, attributes=self._attributes())
            entry = person.entries[0] if person.entries else None
        finally:
            _close(person)
        return self._identity(entry, username) if entry is not None else Identity(username=username)

    def _service(self) -> ldap3.Connection:
        c = self.config
        conn = self._connect(c.bind_dn or "", c.bind_password.get_secret_value() if c.bind_password else "")
        if conn is None:
            raise DirectoryUnavailable(f"the directory refused Valt's service account {c.bind_dn!r}: "
                                       "check bind_dn and bind_password")
        return conn

    def _look_up(self, usernames: list[str]) -> dict[str, Identity]:
        found: dict[str, Identity] = {}
        service = self._service()
        try:
            for username in usernames:
                entry = self._search_person(service, username)
                if service.result and service.result.get("description") not in ("success", "sizeLimitExceeded"):
                    raise DirectoryUnavailable(f"the directory search failed: {service.result.get('description')}")
                if entry is not None:
                    found[username] = self._identity(entry, username)
        finally:
            _close(service)
        return found

    def _identity(self, entry, typed: str) -> Identity:
        c = self.config
        values = entry.entry_attributes_as_dict
        username = _first(values.get(c.username_attribute)) or typed
        groups = None
        if self._groups:
            held = {normal_dn(str(dn)) for dn in values.get(c.group_attribute, [])}
            groups = tuple(sorted({self._groups[dn] for dn in held if dn in self._groups}))
        return Identity(username=username, display_name=_first(values.get(c.display_name_attribute)),
                        email=_first(values.get(c.email_attribute)), groups=groups)


def _close(conn: ldap3.Connection) -> None:
    # After a failed TLS handshake the socket is gone and an unbind would raise on it.
    try:
        conn.unbind()
    except LDAPException:
        pass


def _first(values) -> str:
    return str(values[0]) if values else ""


def _reason(err: LDAPException) -> str:
    # ldap3 wraps socket errors as lists of (exception, ...) tuples; the first line says enough.
    return (str(err).splitlines() or [type(err).__name__])[0][:300]
