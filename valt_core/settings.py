"""Settings: a TOML file plus ``VALT_*`` environment overrides, read into pydantic models.

Precedence, lowest first: built-in defaults, the TOML file (``--config PATH`` or ``VALT_CONFIG``),
then environment variables. ``VALT_DATA_DIR`` and ``VALT_DATABASE_URL`` are short forms; any
other key is reachable as ``VALT_<SECTION>__<KEY>`` (for example ``VALT_SERVER__PORT=9000``).
Bad settings raise :class:`~valt_core.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
import tomllib
from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from .errors import ConfigError, validation_problems
from .files import make_private_dir, open_private

ENV_PREFIX = "VALT_"
# Short names that read better than the generic SECTION__KEY form.
ENV_ALIASES: dict[str, tuple[str, ...]] = {
    "DATA_DIR": ("data_dir",),
    "DATABASE_URL": ("database", "url"),
    "STORAGE_DRIVER": ("storage", "driver"),
}
# VALT_* variables that are not settings (read by the CLI directly).
ENV_NOT_SETTINGS = {"CONFIG", "DEMO_PASSWORD"}


class StrictModel(BaseModel):
    """Base for settings sections: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class ServerSettings(StrictModel):
    """Where ``valt serve`` listens, over HTTP or HTTPS, and the key that signs tokens and cookies."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    secret_key: SecretStr | None = Field(
        None, description="Derives CSRF tokens (and signs media tokens); generated into DATA_DIR/secret_key when unset."
    )
    secure_cookies: bool = Field(
        False, description="Mark cookies Secure (set when serving HTTPS); `tls` on turns it on whatever this says.")
    tls: bool = Field(False, description="Serve HTTPS (and WSS for live view) on `port` instead of plain HTTP.")
    tls_cert: Path | None = Field(
        None, description="PEM certificate file (the server's certificate first, then its chain), with `tls_key`; "
                          "unset with `tls` on: a self-signed certificate is made once into DATA_DIR/tls/.")
    tls_key: Path | None = Field(None, description="PEM private key file of `tls_cert`, unencrypted.")
    redirect_port: int | None = Field(
        None, ge=1, le=65535,
        description="A plain-HTTP port that only answers redirects to the HTTPS address (needs `tls`); unset: none.")
    hsts_max_age_s: int = Field(
        31536000, ge=0,
        description="Strict-Transport-Security max-age in seconds, sent with `tls` on (0: browsers forget it).")
    hsts_include_subdomains: bool = Field(False, description="Add includeSubDomains to Strict-Transport-Security.")
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Reverse proxies (addresses or networks) whose X-Forwarded-For names the client. Sign-in "
                    "throttling and the audit log key on the client address; empty: the socket's address.")
    send_buffer_kb: int = Field(
        0, ge=0, le=65536,
        description="Kernel send buffer per connection (0: the OS default). Small values make a slow "
                    "live viewer skip ahead sooner instead of piling seconds of video into socket buffers.",
    )


    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        from .proxy import parse_networks

        parse_networks(value)
        return value

    @model_validator(mode="after")
    def _tls(self) -> ServerSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            given, missing = ("tls_cert", "tls_key") if self.tls_key is None else ("tls_key", "tls_cert")
            raise ValueError(f"server.{given} is set but server.{missing} is not: give server.tls_cert and "
                             "server.tls_key together (a certificate and its private key), or neither for a "
                             "self-signed certificate")
        if self.redirect_port is not None:
            if not self.tls:
                raise ValueError("server.redirect_port redirects to HTTPS, so it needs server.tls = true")
            if self.redirect_port == self.port:
                raise ValueError(f"server.redirect_port must differ from server.port ({self.port})")
        if self.tls:
            # A session cookie sent over plain HTTP would undo what TLS protects.
            self.secure_cookies = True
        return self


class DatabaseSettings(StrictModel):
    """Which database to use; SQLite under the data directory when ``url`` is unset."""

    url: str | None = Field(
        None, description="SQLAlchemy async URL, e.g. mysql+aiomysql://user:pw@127.0.0.1:3306/valt"
    )
    connect_timeout_s: float = Field(5.0, gt=0)
    echo: bool = False


class StorageSettings(StrictModel):
    """Which storage backend holds recordings, and its driver-specific options."""

    driver: str = "local"
    options: dict[str, Any] = Field(default_factory=dict)
    presigned_downloads_s: int = Field(
        0, ge=0, le=3600,
        description="Clip downloads go straight from the store by a signed URL valid this many seconds, "
                    "after Valt's own checks, where the backend offers them (s3); 0: Valt sends every byte.")
    presigned_playback_s: int = Field(
        0, ge=0, le=3600,
        description="The review player reads segments straight from the store by signed URLs valid this "
                    "many seconds, after Valt's own checks and audit, where the backend offers them (s3; "
                    "the bucket needs a CORS rule for Valt's origin); 0: Valt sends every byte.")


class AuthSettings(StrictModel):
    """How people are identified and how long their sessions last."""

    backends: list[str] = Field(default_factory=lambda: ["local"])
    backend_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    lockout_threshold: int = Field(5, ge=1, description="Wrong passwords in a row for one user name from one "
                                                        "client address before that name is locked for that address.")
    lockout_minutes: float = Field(15.0, gt=0, description="How long such a lock lasts (`valt user unlock` ends it).")
    address_failures_per_minute: int = Field(
        20, ge=0, description="Failed sign-ins one client address may make per minute, whatever the names "
                              "(0: no limit); beyond it the answer is 429 before any password is checked.")
    max_concurrent_checks: int = Field(
        1, ge=1, le=64,
        description="Password hashes checked at once (argon2 is slow on purpose; more would starve other requests).")
    check_queue: int = Field(
        16, ge=0, description="Sign-ins that may wait for a check; beyond it the answer is 503 busy.")
    session_hours: float = Field(12.0, gt=0, description="Lifetime of a login token.")
    sync_minutes: float = Field(
        15.0, ge=0, description="How often users of a directory backend (`ldap`) are checked against the "
                                "directory: gone ones are disabled, group memberships updated (0: never).")


class MediaSettings(StrictModel):
    """The media engine: ingest, recording segments, safety limits."""

    embedded: bool = Field(
        True, description="`valt serve` runs its own media server (named `local`); off: cameras are recorded only "
                          "by `valt media-server` processes.")
    always_on: bool = Field(True, description="Ingest every enabled camera from start-up (status always known).")
    live_port: int = Field(
        8081, ge=0, le=65535, description="`valt media-server` only: the port browsers open direct live view on "
                                          "(HTTPS/WSS when `[server] tls` is on); 0 listens on none (relayed only).")
    live_host: str = Field("", description="`valt media-server` only: the address the live port listens on "
                                           "(empty: `[server] host`).")
    live_url: str = Field(
        "", description="`valt media-server` only: the address browsers reach the live port at, e.g. "
                        "`https://media1.site.example:8081` (empty: made from the listen address).")
    profile: str = Field("main", description="Camera stream profile that is ingested and recorded.")
    segment_seconds: float = Field(
        60.0, ge=2, le=3600, description="Cut recordings into files of about this length (at keyframes).")
    fragment_seconds: float = Field(1.0, gt=0, le=10, description="MP4 fragment length: the most a crash can lose.")
    no_frames_after_s: float = Field(
        5.0, gt=0, le=60, description="A connected camera with no video this long is 'no_frames'.")
    gap_after_s: float = Field(2.0, gt=0, le=60, description="No video this long during a recording opens a gap.")
    reconnect_max_s: float = Field(30.0, ge=1, description="Longest wait between reconnect attempts.")
    push_grace_s: float = Field(
        60.0, ge=0, le=3600, description="How long a pushed camera (a phone over RTMP) that dropped may take to "
                                         "come back and continue the same live stream and recording.")
    min_free_mb: float = Field(
        1024.0, ge=0, description="Free-space floor of the storage: below it recordings stop and new ones are refused.")
    disk_check_s: float = Field(2.0, gt=0, description="How often free space is checked while recording.")
    cache_mb: float = Field(2048.0, ge=0, description="Disk space for built playback files (DATA_DIR/cache).")
    clip_jobs_running: int = Field(
        2, ge=1, le=64, description="Clip jobs built at once over all users; the others wait in a queue.")
    clip_jobs_running_per_user: int = Field(1, ge=1, le=64, description="Clip jobs of one user built at once.")
    clip_jobs_queued_per_user: int = Field(
        10, ge=1, le=1000, description="Clip jobs one user may have waiting or running; beyond it a new one is refused"
                                       " (409).")


class LiveSettings(StrictModel):
    """Live view: tokens and the transports' options."""

    token_ttl_s: float = Field(
        300.0, ge=10, le=3600, description="Lifetime of a live-view token (opening a stream needs a valid one).")
    recheck_s: float = Field(5.0, gt=0, le=300, description="How often open live streams are checked against "
                                                            "their session, user and camera (changes made in "
                                                            "another process close them within this time).")
    transport_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Options per transport, e.g. [live.transport_options.wss].")


class CameraSettings(StrictModel):
    """``[cameras]``: how Valt finds and talks to cameras."""

    discovery_addresses: list[str] = Field(
        default_factory=list,
        description="Local IPv4 addresses to send discovery probes from, one per camera network; "
                    "empty: the default interface.")
    discovery_timeout_s: float = Field(3.0, gt=0, le=30, description="How long a discovery listens for answers.")
    control_timeout_s: float = Field(
        10.0, gt=0, le=120, description="Longest wait for a camera's answer to a control request (PTZ, snapshot, "
                                        "identity).")

    @field_validator("discovery_addresses")
    @classmethod
    def _ipv4(cls, value: list[str]) -> list[str]:
        for address in value:
            ipaddress.IPv4Address(address)  # raises ValueError, reported with the key
        return value


class AuditSettings(StrictModel):
    """``[audit]``: the key of the audit log's hash chain."""

    key: SecretStr | None = Field(
        None, description="HMAC key of the audit chain; generated into DATA_DIR/audit_key when unset. Keep it "
                          "off the database server: whoever has it and the database can rewrite history.")


class BusSettings(StrictModel):
    """``[bus]``: how the app server and media servers reach each other (docs/bus.md, docs/deployment.md)."""

    url: str = Field(
        "", description="NATS server(s), comma-separated (`nats://host:4222`, `tls://host:4222`); empty: the "
                        "in-process bus of one machine, nothing to install.")
    user: str = Field("", description="NATS user name (with `password`).")
    password: SecretStr | None = Field(None, description="NATS password of `user`.")
    token: SecretStr | None = Field(None, description="NATS token, instead of a user and password.")
    nkey_seed_file: Path | None = Field(
        None, description="File with this process's NATS nkey seed (what `valt media-server add` makes).")
    creds_file: Path | None = Field(None, description="NATS `.creds` file (JWT and seed), instead of the above.")
    tls_ca: Path | None = Field(None, description="CA file that signed the NATS server's certificate (turns TLS on).")
    tls_cert: Path | None = Field(None, description="Client certificate for NATS, when the server asks for one.")
    tls_key: Path | None = Field(None, description="Key of `tls_cert`.")
    prefix: str = Field("VALT", pattern=r"^[A-Za-z0-9_-]{1,32}$",
                        description="Names the JetStream stream and key-value buckets of this installation.")
    lease_s: float = Field(
        4.0, ge=1, le=60, description="How long a media server's presence and its lease on its cameras last unrenewed: "
                                      "a server that dies loses its cameras to another of its pool after about this.")
    command_timeout_s: float = Field(30.0, gt=0, le=600, description="How long a command to a media server may take.")

    @model_validator(mode="after")
    def _tls_pair(self) -> BusSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            given, missing = ("tls_cert", "tls_key") if self.tls_key is None else ("tls_key", "tls_cert")
            raise ValueError(f"bus.{given} is set but bus.{missing} is not: a NATS client certificate needs "
                             "its private key (give bus.tls_cert and bus.tls_key together, or neither)")
        return self

    @property
    def servers(self) -> list[str]:
        """The NATS URLs."""
        return [u.strip() for u in self.url.split(",") if u.strip()]


class UploadSettings(StrictModel):
    """Resumable uploads of offline recordings (tus 1.0): limits, expiry and quotas."""

    max_file_mb: float = Field(20480.0, gt=0, description="Largest video one upload file may be, in MiB.")
    files_per_upload: int = Field(16, ge=1, le=64, description="Most videos (tracks) one upload may hold.")
    expire_hours: float = Field(
        24.0, gt=0, description="An upload not finished this long after it was created expires; its bytes are removed.")
    quota_mb: float = Field(
        51200.0, ge=0, description="Bytes one user's uploads may hold at once, in MiB: the declared sizes of their "
                                   "unfinished uploads. 0: no limit.")
    commit_every_mb: float = Field(
        8.0, gt=0, le=1024, description="While a PATCH without a checksum streams in, the offset is committed each "
                                        "time this much more is on disk: the most a dropped connection must resend.")
    expiry_check_s: float = Field(60.0, gt=0, le=3600, description="How often expired uploads are looked for.")


class PluginSettings(StrictModel):
    """Plugins to leave unloaded, as ``"group:name"`` (e.g. ``"cameras:onvif"``) or ``"name"``."""

    disable: list[str] = Field(default_factory=list)


class Settings(StrictModel):
    """All of Valt's settings."""

    data_dir: Path = Path("./valt-data")
    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    live: LiveSettings = Field(default_factory=LiveSettings)
    cameras: CameraSettings = Field(default_factory=CameraSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    plugins: PluginSettings = Field(default_factory=PluginSettings)
    bus: BusSettings = Field(default_factory=BusSettings)
    uploads: UploadSettings = Field(default_factory=UploadSettings)

    @property
    def database_url(self) -> str:
        """The database URL in force: the configured one, else SQLite in the data directory."""
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'valt.db').resolve()}"

    def secret_key_bytes(self) -> bytes:
        """The signing key; generated once and kept in ``DATA_DIR/secret_key`` when not set."""
        if self.server.secret_key is not None:
            return self.server.secret_key.get_secret_value().encode()
        return self._key_file("secret_key")

    def audit_key_bytes(self) -> bytes:
        """The audit chain's key; generated once into ``DATA_DIR/audit_key`` when not set.

        It must differ from the signing key: a leaked media secret must not let anyone
        rewrite the audit log.
        """
        key = (self.audit.key.get_secret_value().encode() if self.audit.key is not None
               else self._key_file("audit_key"))
        if hmac.compare_digest(key, self.secret_key_bytes()):
            raise ConfigError("audit.key: must differ from server.secret_key")
        return key

    def _key_file(self, name: str) -> bytes:
        path = self.data_dir / name
        if not path.exists():
            make_private_dir(self.data_dir)  # 0700, whatever the umask
            # Written whole under another name, then linked into place only if still absent:
            # a second process starting at the same moment never reads a half-written key.
            tmp = path.with_name(f".{name}.{os.getpid()}")
            with os.fdopen(open_private(tmp), "w") as f:
                f.write(secrets.token_urlsafe(48))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process made it first: use theirs
            finally:
                tmp.unlink(missing_ok=True)
        key = path.read_text().strip().encode()
        if not key:
            raise ConfigError(f"{path} is empty: delete it to have a new key made, or set the key in the settings")
        return key


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX):]
        if key in ENV_NOT_SETTINGS:
            continue
        if key in ENV_ALIASES:
            path = ENV_ALIASES[key]
        elif "__" in key:
            path = tuple(part.lower() for part in key.split("__"))
        else:
            continue
        value: Any = raw
        # Lists and tables can be given as JSON, e.g. VALT_PLUGINS__DISABLE='["onvif"]'.
        if raw[:1] in "[{":
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as err:
                raise ConfigError(f"environment variable {name}: not valid JSON ({err})") from err
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name}: {part} is not a section")
        node[path[-1]] = value
    return tree


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _describe(err: ValidationError, source: str) -> str:
    problems = validation_problems(err)
    return f"bad settings ({source}): " + "; ".join(f"{k}: {v}" for k, v in problems.items())


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Read settings from the TOML file (if any) and the environment.

    ``config_path`` falls back to ``VALT_CONFIG``. Raises :class:`ConfigError` with one clear
    message naming the offending key or file.
    """
    environ = os.environ if environ is None else environ
    path = config_path or environ.get("VALT_CONFIG")
    data: dict[str, Any] = {}
    source = "defaults"
    if path:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError as err:
            raise ConfigError(f"settings file not found: {p}") from err
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"settings file {p} is not valid TOML: {err}") from err
        source = str(p)
    data = _merge(data, _env_overrides(environ))
    try:
        return Settings.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_describe(err, f"{source} and VALT_* environment")) from err
