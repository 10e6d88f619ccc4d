"""The bus over NATS (nats-py), for an app server and media servers on several machines.

How the contract of :mod:`valt_core.bus.base` maps onto NATS:

- ``publish``/``subscribe`` are core NATS subjects (``queue`` is a NATS queue group); each
  subscription's handler gets its messages one at a time, in order.
- ``serve``/``request`` are NATS request/reply; "no responders" and a timeout are
  :class:`BusUnavailable` at once, and a responder that raises answers with the header
  ``Valt-Responder-Failed`` so the requester does not wait out its timeout.
- ``publish_durable`` is a JetStream publish into the stream ``<prefix>_INDEX`` (subjects
  ``valt.index.>``, file storage, made on first use), with ``msg_id`` as the ``Nats-Msg-Id``
  header so the stream's duplicate window drops a second copy; it returns once the stream
  acknowledged it, and raises :class:`BusUnavailable` within ``op_timeout_s`` otherwise.
- ``consume_durable`` is a durable push consumer on that stream (explicit acks, at most one
  message unacknowledged, so the index is applied in order): acked when the handler returns,
  nak'ed with a ``redeliver_s`` delay when it raises, nak'ed at once when the consumer closes.
- ``key_value`` is a JetStream key-value bucket ``<prefix>_<bucket>`` (the bucket's TTL is the
  entries' expiry); ``create`` and ``update`` are nats-py's compare-and-swap writes.

The connection reconnects forever, with a capped, jittered backoff; while it is down every call
fails fast with :class:`BusUnavailable` rather than buffering (a write buffered during an outage
would land after its caller was told it failed). A permissions violation the server reports
for a subject a call uses fails that call with :class:`BusPermissionDenied` at once (nats-py
only passes it to the error callback and lets the request time out). Passwords and tokens never
reach a log line or an error message.

TLS is wanted with a ``tls://`` URL, a CA file or a client certificate, and then required: a
server that offers no TLS gets nothing (nats-py alone would send the credentials in the clear).
A TLS refusal while starting (a certificate that does not verify, a client certificate the
server wants or rejects) fails ``start`` at once, since trying again cannot mend it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import ssl
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator, TypeVar

import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription
from nats.js import api

from ..errors import ConfigError
from ..redact import scrub
from .base import (
    DURABLE_SUBJECTS,
    Bus,
    BusPermissionDenied,
    BusUnavailable,
    Entry,
    Handler,
    KeyExists,
    KeyValue,
    Message,
    Responder,
    Subscription,
    WrongRevision,
    subject_matches,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Set on a reply when the responder raised; its value is the exception's type name.
RESPONDER_FAILED = "Valt-Responder-Failed"
# The server's words, lower-cased by nats-py's parser: 'Permissions Violation for Publish to "x"'.
_DENIAL = re.compile(r'permissions violation for (publish|subscription) to "([^"]*)"')
# JetStream API calls a durable or key-value operation makes; a denial of any of them fails it.
_JS_API = "$js.api.>"
# JetStream's error codes for "the expected last sequence is not the key's" (nats-py maps them
# for update, not for delete).
_WRONG_LAST_SEQUENCE = (10071, 10164)


class _Denials:
    """Permission violations the server reports, handed to the calls waiting on those subjects."""

    def __init__(self) -> None:
        self._watches: dict[asyncio.Future[str], tuple[str, tuple[str, ...]]] = {}

    def watch(self, kind: str, patterns: tuple[str, ...]) -> asyncio.Future[str]:
        """A future that gets the server's text when a ``kind`` ("publish"/"subscription") to a subject
        matching one of ``patterns`` is refused."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._watches[future] = (kind, tuple(p.lower() for p in patterns))
        return future

    def forget(self, future: asyncio.Future[str]) -> None:
        """Stop watching for ``future``."""
        self._watches.pop(future, None)

    def report(self, text: str) -> bool:
        """Hand a server error to the watches it concerns; True when it was a permissions violation."""
        found = _DENIAL.search(text.lower())
        if found is None:
            return False
        kind, subject = found.group(1), found.group(2)
        for future, (want, patterns) in list(self._watches.items()):
            if want == kind and not future.done() and any(subject_matches(p, subject) for p in patterns):
                future.set_result(f"{kind} to {subject!r} is not permitted for this NATS user")
        return True


class _TlsClient(Client):
    """nats-py's client, which goes on only over TLS once TLS is wanted (a ``tls`` context given).

    nats-py 2.16 upgrades to TLS only when the server's INFO says ``tls_required``: a ``tls://``
    URL to a server without TLS, or an INFO altered on the way, would carry our CONNECT (and its
    credentials) in plain text.
    """

    async def _process_info(self, info: dict[str, Any], initial_connection: bool = False) -> None:
        if initial_connection and "tls" in self.options:
            if not (info.get("tls_required") or info.get("tls_available")):
                raise nats.errors.SecureConnWantedError()
            # nats-py reads this very dict next to decide on the upgrade: TLS it is.
            info["tls_required"] = True
        await super()._process_info(info, initial_connection)


#: How a server that dropped the connection after the TLS handshake shows, when its alert did not
#: reach us first (reading: reset; writing our CONNECT: broken pipe; TLS: an EOF).
_DROPPED = (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError)


def _tls_refusal(err: Exception) -> str | None:
    """What a TLS failure that trying again cannot mend says, with a hint at the setting; else ``None``."""
    if isinstance(err, nats.errors.SecureConnWantedError):
        return "the server offers no TLS, and TLS is asked for (a tls:// URL, [bus] tls_ca); nothing was sent"
    if isinstance(err, ssl.SSLCertVerificationError):
        return (f"TLS: certificate verify failed: {err.verify_message} (is [bus] tls_ca the CA that signed "
                "the NATS server's certificate, for the host name in [bus] url?)")
    reason = getattr(err, "reason", None) if isinstance(err, ssl.SSLError) else None
    if not reason or "ALERT" not in reason:
        return None
    # An alert is the server's refusal of the handshake, mostly of our client certificate.
    said = reason.lower().replace("_", " ")
    if "CERTIFICATE_REQUIRED" in reason:
        return f"TLS: the server refused the handshake ({said}): give [bus] tls_cert and tls_key"
    if "UNKNOWN_CA" in reason or "CERTIFICATE" in reason:
        return f"TLS: the server refused the handshake ({said}): it does not accept [bus] tls_cert"
    return f"TLS: the server refused the handshake ({said})"


class _CoreSub(Subscription):
    """A core NATS subscription (``subscribe`` or ``serve``)."""

    def __init__(self, bus: "NatsBus") -> None:
        self.bus = bus
        self.sub: NatsSubscription | None = None

    async def close(self) -> None:
        """Unsubscribe (nothing to do once the bus is closed)."""
        sub, self.sub = self.sub, None
        self.bus._subs.discard(self)
        if sub is not None and not self.bus._nc.is_closed:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()


class _DurableConsumer(Subscription):
    """A durable JetStream push consumer and the task that hands its messages to the handler in order."""

    def __init__(self, bus: "NatsBus", subject: str, durable: str, handler: Handler) -> None:
        self.bus, self.subject, self.durable, self.handler = bus, subject, durable, handler
        self.sub: NatsSubscription | None = None
        # nats-py's callback only queues; our own task handles, so close() can stop it mid-message.
        self.arrived: asyncio.Queue[Msg] = asyncio.Queue()
        self.task: asyncio.Task | None = None
        #: The message being handled, given back by close() if it is cut short.
        self.current: Msg | None = None
        #: The ack of a handled message, which close() lets finish rather than cut short.
        self.acking: asyncio.Task | None = None

    async def open(self) -> None:
        """Create (or find) the consumer and start delivering."""
        bus = self.bus
        config = api.ConsumerConfig(
            durable_name=self.durable, deliver_policy=api.DeliverPolicy.ALL, ack_policy=api.AckPolicy.EXPLICIT,
            # One message out at a time: the next is delivered only after this one is acked.
            max_ack_pending=1, ack_wait=bus.ack_wait_s, filter_subject=self.subject)
        self.sub = await bus._js.subscribe(self.subject, durable=self.durable, stream=bus.stream_name,
                                           cb=self._arrive, manual_ack=True, config=config)
        self.task = asyncio.create_task(self._run(), name=f"bus-consumer-{self.durable}")

    async def _arrive(self, msg: Msg) -> None:
        self.arrived.put_nowait(msg)

    async def _run(self) -> None:
        while True:
            self.current = msg = await self.arrived.get()
            if await self._deliver(msg):
                self.current = None  # handled: never given back, whatever happens to the ack
                # Shielded: a close() right after the handler returned must not lose the ack, or
                # the next consumer would wait ack_wait for a message that was handled already.
                self.acking = asyncio.create_task(self._ack(msg))
                await asyncio.shield(self.acking)
                self.acking = None
            self.current = None

    async def _deliver(self, msg: Msg) -> bool:
        """Hand ``msg`` to the handler; True when it returned, False when it raised (and ``msg`` was nak'ed)."""
        message = Message(msg.subject, bytes(msg.data), _plain_headers(msg.headers))
        keepalive = asyncio.create_task(self._working(msg))
        try:
            await self.handler(message)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - at least once: the message comes again
            log.warning("bus consumer %s: %s not handled (%s); again in %g s", self.durable, msg.subject,
                        self.bus._clean(str(err) or type(err).__name__), self.bus.redeliver_s)
            await self._nak(msg, self.bus.redeliver_s)
            return False
        finally:
            keepalive.cancel()
        return True

    async def _ack(self, msg: Msg) -> None:
        # Acked until the server confirms: an ack lost with a dropped connection would otherwise
        # hold the stream back (one message out at a time) until ack_wait ran out after NATS
        # returned. The ack's subject stays valid across a server restart.
        while True:
            if self.bus._nc.is_connected:
                try:
                    await msg.ack_sync(timeout=self.bus.op_timeout_s)
                    return
                except nats.errors.MsgAlreadyAckdError:
                    return
                except (asyncio.TimeoutError, nats.errors.Error) as err:
                    log.debug("bus consumer %s: ack not confirmed (%s); again", self.durable,
                              self.bus._clean(str(err) or type(err).__name__))
            await asyncio.sleep(0.2)

    async def _working(self, msg: Msg) -> None:
        # A long handler (a database that is slow to answer) must not look like a lost message.
        while True:
            await asyncio.sleep(self.bus.ack_wait_s / 3)
            with contextlib.suppress(nats.errors.Error):
                await msg.in_progress()

    async def _nak(self, msg: Msg, delay: float | None) -> None:
        if self.bus._nc.is_connected:
            with contextlib.suppress(nats.errors.Error):
                await msg.nak(delay=delay)

    async def close(self) -> None:
        """Stop delivering; the durable consumer stays on the server, where the next one carries on."""
        self.bus._consumers.discard(self)
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        acking, self.acking = self.acking, None
        if acking is not None:
            try:
                await asyncio.wait_for(acking, self.bus.op_timeout_s)
            except asyncio.TimeoutError:
                pass  # the connection is down: the message comes again after ack_wait, handled twice at worst
        sub, self.sub = self.sub, None
        if sub is not None and not self.bus._nc.is_closed:
            await self._stop_listening(sub)
        # Stopped listening first: a message given back while we still listened would come straight
        # back to us and be lost with the subscription until ack_wait. Now it goes to the next consumer.
        held = [self.current] if self.current is not None else []
        while not self.arrived.empty():
            held.append(self.arrived.get_nowait())
        for msg in held:
            await self._nak(msg, None)
        self.current = None


    async def _stop_listening(self, sub: NatsSubscription) -> None:
        # Drained, not only unsubscribed: the server may send us a message before it sees the
        # unsubscribe, and nats-py drops what comes for a removed subscription, which would leave
        # that message unacknowledged (the stream, one message out at a time, stuck) until
        # ack_wait. nats-py's own drain() cannot be trusted with it: its flush writes the PING
        # ahead of the UNSUB still in its buffer (see NatsBus._sync). So: the UNSUB, then our
        # double flush (the server has seen the UNSUB and sent all it sent before it, which the
        # read loop has queued for our callback by the time the PONG is read), then the
        # subscription's queue handled, then the subscription removed. This uses two private
        # names of nats-py's; without them, it falls back to a plain unsubscribe.
        nc = self.bus._nc
        send_unsubscribe = getattr(nc, "_send_unsubscribe", None)
        pending = getattr(sub, "_pending_queue", None)
        if nc.is_connected and send_unsubscribe is not None and hasattr(sub, "_id"):
            try:
                await send_unsubscribe(sub._id)
                await self.bus._sync(f"stopping the durable consumer {self.durable}")
                if pending is not None:
                    await asyncio.wait_for(pending.join(), self.bus.op_timeout_s)
            except (BusUnavailable, asyncio.TimeoutError, nats.errors.Error) as err:
                log.debug("bus consumer %s: not drained (%s)", self.durable, type(err).__name__)
        with contextlib.suppress(nats.errors.Error):
            await sub.unsubscribe()


class _Bucket(KeyValue):
    """A JetStream key-value bucket."""

    def __init__(self, bus: "NatsBus", name: str, kv: Any) -> None:
        self.bus, self.name, self.kv = bus, name, kv
        self.patterns = (f"$kv.{name}.>", _JS_API)

    async def _call(self, what: str, work: Awaitable[T]) -> T:
        return await self.bus._js_call(f"{what} in bucket {self.name}", self.patterns, work)

    async def get(self, key: str) -> Entry | None:
        """The key's entry, or ``None`` when absent, deleted or expired."""
        try:
            entry = await self._call(f"reading {key}", self.kv.get(key))
        except nats.js.errors.KeyNotFoundError:
            return None
        return Entry(key, bytes(entry.value or b""), entry.revision)

    async def create(self, key: str, value: bytes) -> int:
        """Write ``key`` only if absent (nats-py's ``create``); :class:`KeyExists` otherwise."""
        try:
            return await self._call(f"creating {key}", self.kv.create(key, bytes(value)))
        except nats.js.errors.KeyWrongLastSequenceError as err:
            raise KeyExists(f"{key} exists in bucket {self.name}") from err

    async def update(self, key: str, value: bytes, revision: int) -> int:
        """Write ``key`` only at ``revision`` (compare and swap); :class:`WrongRevision` otherwise."""
        try:
            return await self._call(f"updating {key}", self.kv.update(key, bytes(value), last=revision))
        except nats.js.errors.KeyWrongLastSequenceError as err:
            raise WrongRevision(f"{key} in bucket {self.name} is not at revision {revision}") from err

    async def put(self, key: str, value: bytes) -> int:
        """Write ``key`` unconditionally; the new revision."""
        return await self._call(f"writing {key}", self.kv.put(key, bytes(value)))

    async def delete(self, key: str, revision: int | None = None) -> None:
        """Remove ``key`` (only at ``revision`` when given; :class:`WrongRevision` otherwise)."""
        if revision is not None and revision < 1:
            # nats-py drops a non-positive "last" and would delete unconditionally.
            raise WrongRevision(f"{key} in bucket {self.name} is not at revision {revision}")
        try:
            await self._call(f"deleting {key}", self.kv.delete(key, last=revision))
        except nats.js.errors.APIError as err:  # only a wrong last sequence gets here
            raise WrongRevision(f"{key} in bucket {self.name} is not at revision {revision}") from err

    async def keys(self) -> list[str]:
        """Every present key."""
        try:
            return await self._call("listing keys", self.kv.keys())
        except nats.js.errors.NoKeysError:
            return []


class NatsBus(Bus):
    """The bus over a NATS server or cluster with JetStream (see the module docstring).

    ``servers`` are ``nats://`` or ``tls://`` URLs; ``name`` names the connection in the server's
    monitoring. Authentication is one of ``user``/``password``, ``token``, ``creds_file`` (a
    ``.creds`` file: JWT and nkey seed) or ``nkey_seed_file``. ``tls_ca_file`` is the CA that
    signed the server's certificate, ``tls_cert_file``/``tls_key_file`` a client certificate when
    the server asks for one. ``prefix`` names the durable stream (``<prefix>_INDEX``) and the
    key-value buckets (``<prefix>_<bucket>``).
    """

    def __init__(self, servers: list[str], name: str, *, user: str | None = None, password: str | None = None,
                 token: str | None = None, creds_file: str | Path | None = None,
                 nkey_seed_file: str | Path | None = None, tls_ca_file: str | Path | None = None,
                 tls_cert_file: str | Path | None = None, tls_key_file: str | Path | None = None,
                 prefix: str = "VALT", connect_timeout_s: float = 5.0, op_timeout_s: float = 2.0,
                 reconnect_max_wait_s: float = 2.0, ping_interval_s: float = 5.0, ack_wait_s: float = 10.0,
                 redeliver_s: float = 1.0, dedupe_window_s: float = 600.0,
                 stream_max_age_s: float = 14 * 86400) -> None:
        if not servers:
            raise ValueError("NatsBus needs at least one server URL")
        if tls_cert_file is not None and tls_key_file is None:
            raise ValueError("a TLS client certificate needs its key file")
        self.servers, self.name, self.prefix = list(servers), name, prefix
        self._auth = {"user": user, "password": password, "token": token,
                      "user_credentials": str(creds_file) if creds_file else None,
                      "nkeys_seed": str(nkey_seed_file) if nkey_seed_file else None}
        self._secrets = [s for s in (password, token) if s]
        self.tls_ca_file, self.tls_cert_file, self.tls_key_file = tls_ca_file, tls_cert_file, tls_key_file
        self.connect_timeout_s, self.op_timeout_s = connect_timeout_s, op_timeout_s
        self.reconnect_max_wait_s, self.ping_interval_s = reconnect_max_wait_s, ping_interval_s
        self.ack_wait_s, self.redeliver_s = ack_wait_s, redeliver_s
        self.dedupe_window_s, self.stream_max_age_s = dedupe_window_s, stream_max_age_s
        #: The durable stream's name.
        self.stream_name = f"{prefix}_INDEX"
        self._nc: Client = _TlsClient()
        self._js: Any = None
        self._denials = _Denials()
        self._subs: set[_CoreSub] = set()
        self._consumers: set[_DurableConsumer] = set()
        self._tasks: set[asyncio.Task] = set()
        self._flushes: set[asyncio.Task] = set()
        self._stream_ready = False
        self._stream_lock = asyncio.Lock()
        self._buckets: dict[str, _Bucket] = {}
        self._last_error = ""
        self._refusals_logged: set[str] = set()
        # What went wrong while start() tried (distinct texts, in order): the refusal that explains
        # it (a wrong password, an untrusted certificate) is often followed by plain resets.
        self._start_errors: list[str] | None = None
        # The TLS refusals seen while start() tries; once every server refused, start() gives up.
        self._tls_refusals: list[str] = []
        self._tls_in_use = False
        self._refused: asyncio.Future[str] | None = None

    # --- the connection ----------------------------------------------------------------------

    def _clean(self, text: str) -> str:
        """``text`` fit for a log line or an error: URLs' passwords and our secrets masked."""
        return scrub(text, self._secrets)

    @property
    def connected(self) -> bool:
        """True while the connection to a NATS server is up."""
        return self._nc.is_connected

    def _tls_context(self) -> ssl.SSLContext | None:
        wants_tls = any(url.lower().startswith("tls://") for url in self.servers)
        if not (wants_tls or self.tls_ca_file or self.tls_cert_file):
            return None
        try:
            context = ssl.create_default_context(cafile=str(self.tls_ca_file) if self.tls_ca_file else None)
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(f"bus.tls_ca {self.tls_ca_file}: not a readable PEM CA file "
                              f"({err.strerror or err})") from None
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.tls_cert_file is not None:
            try:
                context.load_cert_chain(str(self.tls_cert_file), str(self.tls_key_file))
            except (OSError, ssl.SSLError) as err:
                raise ConfigError(f"bus.tls_cert {self.tls_cert_file} with bus.tls_key {self.tls_key_file}: not a "
                                  f"readable PEM certificate and its key ({err.strerror or err})") from None
        return context

    async def _unless_refused(self, connect: Awaitable[None]) -> None:
        """Await ``connect``; :class:`BusUnavailable` as soon as every server refused TLS."""
        self._tls_refusals = []
        refused = self._refused = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(connect)
        try:
            await asyncio.wait({task, refused}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._refused = None
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if refused.done():
            raise BusUnavailable(refused.result())
        task.result()

    async def start(self) -> None:
        """Connect; :class:`BusUnavailable` when no server accepts within ``connect_timeout_s``.

        Once connected, a lost connection is retried forever; ``start`` itself does not wait
        for a server that is down, so its caller decides whether to try again.
        """
        options: dict[str, Any] = {k: v for k, v in self._auth.items() if v}
        tls = self._tls_context()
        self._tls_in_use = tls is not None
        if tls is not None:
            options["tls"] = tls
        where = ", ".join(self._clean(url) for url in self.servers)
        self._start_errors = []
        try:
            await asyncio.wait_for(self._unless_refused(self._nc.connect(
                servers=self.servers, name=self.name, error_cb=self._on_error,
                disconnected_cb=self._on_disconnect, reconnected_cb=self._on_reconnect, closed_cb=self._on_closed,
                allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=0.5,
                reconnect_to_server_handler=self._next_server, connect_timeout=min(2.0, self.connect_timeout_s),
                ping_interval=self.ping_interval_s, max_outstanding_pings=3, **options)),
                self.connect_timeout_s)
        except (asyncio.TimeoutError, nats.errors.Error, OSError, ssl.SSLError, BusUnavailable) as err:
            with contextlib.suppress(Exception):
                await self._nc.close()
            self._nc = _TlsClient()
            if isinstance(err, BusUnavailable):
                raise BusUnavailable(f"cannot connect to NATS at {where}: {err.message}") from None
            errors = "; ".join(self._start_errors[:3]) or self._clean(str(err) or type(err).__name__)
            raise BusUnavailable(f"cannot connect to NATS at {where} within {self.connect_timeout_s:g} s "
                                 f"({errors})") from None
        finally:
            self._start_errors = None
        self._js = self._nc.jetstream(timeout=self.op_timeout_s)
        log.info("bus: connected to NATS at %s as %s", self._clean(str(self._nc.connected_url.geturl())), self.name)

    def _next_server(self, servers: list[Any], info: dict[str, Any]) -> tuple[Any, float]:
        # The least-tried server, after a delay doubling per failed attempt (capped, jittered so
        # that many media servers do not all dial a returning NATS at the same instant).
        server = min(servers, key=lambda s: s.reconnects)
        if server.reconnects == 0:
            return server, 0.0
        delay = min(self.reconnect_max_wait_s, 0.1 * 2 ** min(server.reconnects, 10))
        return server, delay * random.uniform(0.5, 1.0)

    async def _on_error(self, err: Exception) -> None:
        text = self._clean(str(err) or type(err).__name__)
        refusal = _tls_refusal(err) if self._refused is not None else None
        if refusal is None and self._refused is not None and self._tls_in_use and isinstance(err, _DROPPED):
            # Under TLS 1.3 the server judges our certificate after our side of the handshake is
            # done; its alert may not reach us before it drops the connection.
            refusal = ("TLS: the server closed the connection after the TLS handshake: it may want a client "
                       "certificate it trusts ([bus] tls_cert and tls_key, signed by a CA it knows)")
        if refusal is not None and self._refused is not None:
            self._tls_refusals.append(refusal)
            if len(self._tls_refusals) >= len(self.servers) and not self._refused.done():
                self._refused.set_result(self._tls_refusals[0])
        if self._denials.report(text):
            # A forbidden live subject would be refused 30 times a second: each subject once is enough.
            level = logging.DEBUG if text in self._refusals_logged else logging.ERROR
            if len(self._refusals_logged) < 1000:
                self._refusals_logged.add(text)
            log.log(level, "bus: NATS refused: %s", text)
            return
        # During an outage every reconnect attempt fails the same way: say it once.
        level = logging.DEBUG if text == self._last_error else logging.WARNING
        self._last_error = text
        if self._start_errors is not None and text not in self._start_errors:
            self._start_errors.append(text)
        log.log(level, "bus: NATS connection: %s", text)

    async def _on_disconnect(self) -> None:
        if not self._nc.is_closed:
            log.warning("bus: lost the connection to NATS; reconnecting")

    async def _on_reconnect(self) -> None:
        self._last_error = ""
        log.info("bus: reconnected to NATS at %s", self._clean(str(self._nc.connected_url.geturl())))

    async def _on_closed(self) -> None:
        log.debug("bus: NATS connection closed")

    async def close(self) -> None:
        """End every consumer and subscription, then the connection (quickly, even while NATS is down)."""
        for consumer in list(self._consumers):
            await consumer.close()
        for sub in list(self._subs):
            await sub.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if not self._nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), 5)
        # Only now, with the connection gone, may a flush still waiting be cancelled (see _sync).
        for task in list(self._flushes):
            task.cancel()

    # --- helpers -----------------------------------------------------------------------------

    def _unavailable(self, what: str, err: BaseException) -> BusUnavailable:
        if isinstance(err, asyncio.TimeoutError):
            return BusUnavailable(f"{what}: NATS did not answer within {self.op_timeout_s:g} s")
        if isinstance(err, (nats.errors.NoRespondersError, nats.js.errors.NoStreamResponseError,
                            nats.js.errors.ServiceUnavailableError)):
            return BusUnavailable(f"{what}: JetStream did not answer (not enabled, or starting)")
        return BusUnavailable(f"{what}: {self._clean(str(err) or type(err).__name__)}")

    def _need_connection(self, what: str) -> None:
        if not self._nc.is_connected:
            state = "closed" if self._nc.is_closed else "not connected (reconnecting)"
            raise BusUnavailable(f"{what}: the bus is {state}")

    async def _guarded(self, kind: str, patterns: tuple[str, ...], work: Awaitable[T]) -> T:
        """``work``'s result, or :class:`BusPermissionDenied` as soon as the server refuses a subject it uses."""
        denied = self._denials.watch(kind, patterns)
        task = asyncio.ensure_future(work)
        try:
            await asyncio.wait({task, denied}, return_when=asyncio.FIRST_COMPLETED)
            if denied.done():
                raise BusPermissionDenied(denied.result())
            return task.result()
        finally:
            self._denials.forget(denied)
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _js_call(self, what: str, patterns: tuple[str, ...], work: Awaitable[T]) -> T:
        """A JetStream call under the operation timeout, its transport failures as :class:`BusUnavailable`.

        The answers a caller maps (a key not found, no keys, a wrong last sequence) pass through.
        """
        if not self._nc.is_connected:
            if asyncio.iscoroutine(work):
                work.close()  # never started: no "never awaited" warning
            self._need_connection(what)
        try:
            return await asyncio.wait_for(self._guarded("publish", patterns, work), self.op_timeout_s + 0.5)
        except (nats.js.errors.KeyWrongLastSequenceError, nats.js.errors.KeyNotFoundError, nats.js.errors.NoKeysError):
            raise
        except nats.js.errors.APIError as err:
            if err.err_code in _WRONG_LAST_SEQUENCE:
                raise
            raise self._unavailable(what, err) from err
        except (asyncio.TimeoutError, nats.errors.Error, OSError) as err:
            raise self._unavailable(what, err) from err

    @contextlib.contextmanager
    def _edge(self, what: str) -> Iterator[None]:
        # nats-py's transport errors become ours at this one place.
        try:
            yield
        except (asyncio.TimeoutError, nats.errors.Error, OSError) as err:
            raise self._unavailable(what, err) from err

    # --- publish/subscribe and request/reply ------------------------------------------------

    async def publish(self, subject: str, data: bytes, headers: dict[str, str] | None = None) -> None:
        """Send on a core NATS subject (at most once); :class:`BusUnavailable` while disconnected.

        A subject this user may not publish to is dropped by the server, which says so only in
        the log (``bus: NATS refused``): a check per message would cost a round trip.
        """
        self._need_connection(f"publishing on {subject}")
        with self._edge(f"publishing on {subject}"):
            await self._nc.publish(subject, bytes(data), headers=dict(headers) if headers else None)

    async def _sync(self, what: str) -> None:
        """Return once the server has processed everything this connection sent so far.

        nats-py's ``flush`` (PING, wait for PONG) must never be cancelled or time out while its
        PONG may still come: a PONG for an abandoned wait raises inside nats-py's read loop and
        silently ends the connection. So it runs in a task of its own with a timeout far beyond
        the ping-based stale-connection check (which resets the PONG queue), and only our wait
        for it is bounded.
        """
        async def flush_twice() -> None:
            # Twice: nats-py writes a PING straight to the socket, ahead of commands still in its
            # pending buffer, so the first PONG can come before the server saw them.
            await self._nc.flush(timeout=60)
            await self._nc.flush(timeout=60)

        task = asyncio.ensure_future(flush_twice())
        self._flushes.add(task)
        task.add_done_callback(_forget_flush(self._flushes))
        done, _ = await asyncio.wait({task}, timeout=self.op_timeout_s)
        if not done:
            raise BusUnavailable(f"{what}: NATS did not answer within {self.op_timeout_s:g} s")
        with self._edge(what):
            task.result()

    async def _subscribe(self, subject: str, queue: str | None, cb: Any) -> _CoreSub:
        what = f"subscribing to {subject}"
        self._need_connection(what)
        sub = _CoreSub(self)
        denied = self._denials.watch("subscription", (subject,))
        try:
            with self._edge(what):
                sub.sub = await self._nc.subscribe(subject, queue=queue or "", cb=cb)
            # Once the server answered, it took the SUB (so a request from elsewhere reaches it),
            # or it said it refused it.
            await self._sync(what)
            if denied.done():
                raise BusPermissionDenied(denied.result())
        except BaseException:
            await sub.close()
            raise
        finally:
            self._denials.forget(denied)
        self._subs.add(sub)
        return sub

    async def subscribe(self, subject: str, handler: Handler, queue: str | None = None) -> Subscription:
        """Call ``handler`` for each message on ``subject``, one at a time and in order."""
        async def cb(msg: Msg) -> None:
            try:
                await handler(Message(msg.subject, bytes(msg.data), _plain_headers(msg.headers)))
            except Exception:  # noqa: BLE001 - one message's failure must not end the subscription
                log.exception("bus: handler for %s failed", msg.subject)

        return await self._subscribe(subject, queue, cb)

    async def serve(self, subject: str, responder: Responder, queue: str | None = None) -> Subscription:
        """Answer requests on ``subject``; each request is answered in its own task."""
        async def cb(msg: Msg) -> None:
            if msg.reply:
                self._spawn(self._answer(msg, responder))

        return await self._subscribe(subject, queue, cb)

    async def _answer(self, msg: Msg, responder: Responder) -> None:
        try:
            answer = await responder(Message(msg.subject, bytes(msg.data), _plain_headers(msg.headers)))
            data, headers = bytes(answer.data), dict(answer.headers) or None
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 - the requester is told at once instead of timing out
            log.exception("bus: responder for %s failed", msg.subject)
            data, headers = b"", {RESPONDER_FAILED: type(err).__name__}
        with contextlib.suppress(nats.errors.Error):
            await self._nc.publish(msg.reply, data, headers=headers)

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def request(self, subject: str, data: bytes, timeout_s: float,
                      headers: dict[str, str] | None = None) -> Message:
        """The first answer within ``timeout_s``; :class:`BusUnavailable` for no responder, a timeout or a
        responder that failed, :class:`BusPermissionDenied` when this user may not send on ``subject``."""
        self._need_connection(f"requesting {subject}")
        try:
            reply = await self._guarded("publish", (subject,), self._nc.request(
                subject, bytes(data), timeout=timeout_s, headers=dict(headers) if headers else None))
        except nats.errors.NoRespondersError as err:
            raise BusUnavailable(f"nobody answers {subject}") from err
        except asyncio.TimeoutError as err:
            raise BusUnavailable(f"no answer on {subject} within {timeout_s:g} s") from err
        except (nats.errors.Error, OSError) as err:
            raise self._unavailable(f"requesting {subject}", err) from err
        answer_headers = _plain_headers(reply.headers)
        if RESPONDER_FAILED in answer_headers:
            raise BusUnavailable(f"the responder on {subject} failed ({answer_headers[RESPONDER_FAILED]})")
        return Message(reply.subject, bytes(reply.data), answer_headers)

    # --- the durable stream ------------------------------------------------------------------

    async def _ensure_stream(self) -> None:
        if self._stream_ready:
            return
        async with self._stream_lock:
            if self._stream_ready:
                return
            try:
                await self._js.stream_info(self.stream_name)
            except nats.js.errors.NotFoundError:
                config = api.StreamConfig(
                    name=self.stream_name, subjects=[DURABLE_SUBJECTS], storage=api.StorageType.FILE,
                    retention=api.RetentionPolicy.LIMITS, discard=api.DiscardPolicy.OLD,
                    # Long enough for a media server's retries after a long outage to still be dropped.
                    duplicate_window=self.dedupe_window_s, max_age=self.stream_max_age_s,
                    description="Valt: media servers' events (segment index), applied by the app server")
                try:
                    await self._js.add_stream(config)
                except nats.js.errors.BadRequestError as err:
                    # 10058: made meanwhile by another process, with the same name: use it.
                    if err.err_code != 10058:
                        raise
                log.info("bus: made the JetStream stream %s for %s", self.stream_name, DURABLE_SUBJECTS)
            self._stream_ready = True

    async def publish_durable(self, subject: str, data: bytes, msg_id: str,
                              headers: dict[str, str] | None = None) -> None:
        """Store in the JetStream stream; returns once stored (see :meth:`Bus.publish_durable`)."""
        what = f"storing {subject} in {self.stream_name}"
        if not subject_matches(DURABLE_SUBJECTS, subject):
            raise ValueError(f"{subject} is not a subject of the durable stream ({DURABLE_SUBJECTS})")
        send = dict(headers or {})
        send["Nats-Msg-Id"] = msg_id

        async def store() -> None:
            await self._ensure_stream()
            try:
                await self._js.publish(subject, bytes(data), timeout=self.op_timeout_s, headers=send)
            except nats.js.errors.NoStreamResponseError:
                # The stream may have gone (a server with a new store): make it again next time.
                self._stream_ready = False
                raise

        await self._js_call(what, (subject, _JS_API), store())

    async def consume_durable(self, subject: str, durable: str, handler: Handler) -> Subscription:
        """Deliver the stream's messages on ``subject`` through the durable consumer ``durable``, in order."""
        what = f"opening the durable consumer {durable}"
        consumer = _DurableConsumer(self, subject, durable, handler)

        async def open_it() -> None:
            await self._ensure_stream()
            await consumer.open()

        try:
            # "consumer is already bound" (another process consumes with this name) is a BusUnavailable too.
            await self._js_call(what, (_JS_API,), open_it())
        except BaseException:
            await consumer.close()
            raise
        self._consumers.add(consumer)
        return consumer

    async def durable_pending(self, durable: str) -> int:
        """Messages of the stream the consumer has not had, and those it holds unacknowledged."""

        async def ask() -> int:
            info = await self._js.consumer_info(self.stream_name, durable)
            return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

        return await self._js_call(f"asking about the durable consumer {durable}", (_JS_API,), ask())

    # --- key-value ---------------------------------------------------------------------------

    async def key_value(self, bucket: str, ttl_s: float | None = None) -> KeyValue:
        """The bucket ``<prefix>_<bucket>``, made on first use (an existing bucket keeps its own TTL)."""
        name = f"{self.prefix}_{bucket}"
        if name in self._buckets:
            return self._buckets[name]
        what = f"opening the bucket {name}"

        created = False

        async def open_it() -> Any:
            nonlocal created
            try:
                return await self._js.key_value(name)
            except nats.js.errors.BucketNotFoundError:
                created = True
                config = api.KeyValueConfig(bucket=name, history=1, ttl=ttl_s, storage=api.StorageType.FILE)
                return await self._js.create_key_value(config)

        try:
            kv = await self._js_call(what, (_JS_API,), open_it())
        except BusPermissionDenied as err:
            if not created:
                raise
            # A media server may use the cluster's buckets but not make them: until the app server
            # has, this is a wait, not a refusal.
            raise BusUnavailable(f"the bucket {name} does not exist yet and this NATS user may not make it; "
                                 "the app server makes it when it starts") from err
        self._buckets[name] = _Bucket(self, name, kv)
        return self._buckets[name]


def _forget_flush(flushes: set[asyncio.Task]) -> Callable[[asyncio.Task], None]:
    """A done-callback that drops a flush task from ``flushes`` and reads its outcome (nobody else may)."""
    def done(task: asyncio.Task) -> None:
        flushes.discard(task)
        if not task.cancelled():
            task.exception()
    return done


def _plain_headers(headers: dict[str, str] | None) -> dict[str, str]:
    """A message's headers without NATS's own (``Nats-Msg-Id``, ...), as the in-process bus gives them."""
    if not headers:
        return {}
    return {k: v for k, v in headers.items() if not k.lower().startswith("nats-")}

