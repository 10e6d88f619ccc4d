"""The running Valt: settings, plugins, database, storage and services, built once per app."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from quart import current_app

from .audit import AuditLog
from .auth.base import AuthBackend
from .auth.sessions import SessionService
from .cameras.service import CameraService
from .db import Database
from .plugins import PluginHost
from .settings import Settings
from .storage.base import StorageBackend
from .transports.base import Transport

if TYPE_CHECKING:
    from .auth.directory_sync import DirectorySync
    from .auth.live_access import LiveAccess
    from .bus.base import Bus
    from .media.engine import MediaEngine
    from .media.ingest import PushIngest
    from .media_control import MediaControl
    from .review import ReviewService
    from .uploads import UploadService


@dataclass
class ValtContext:
    """Everything a request handler or a command needs, in one object."""

    settings: Settings
    plugins: PluginHost
    db: Database
    storage: StorageBackend
    auth_backends: dict[str, AuthBackend]
    sessions: SessionService
    audit: AuditLog
    secret: bytes
    cameras: CameraService = field(init=False)
    #: The bus to the media servers (in-process for ``valt serve``).
    bus: "Bus" = field(init=False)
    #: The media server of this process (``None`` in an app server whose media servers are elsewhere).
    engine: "MediaEngine | None" = field(init=False)
    #: Recordings, cameras and live streams as the API sees them.
    media: "MediaControl" = field(init=False)
    live: "LiveAccess" = field(init=False)
    #: Thumbnails, players' media types and viewing spans of the review side.
    review: "ReviewService" = field(init=False)
    #: Uploads of offline recordings (tus) and the recordings they become.
    uploads: "UploadService" = field(init=False)
    #: Users of directory backends checked against their directory on a schedule.
    directory_sync: "DirectorySync" = field(init=False)
    transports: dict[str, Transport] = field(default_factory=dict)
    #: The ingest transports (RTMP from phones) of this process's media engine (``None`` without one).
    push: "PushIngest | None" = None

    async def close(self) -> None:
        """Release the storage backend's clients and the database's connections."""
        await self.storage.aclose()
        await self.db.dispose()

    @classmethod
    def build(cls, settings: Settings, plugins: PluginHost | None = None) -> "ValtContext":
        """Load plugins (unless given) and build every service; does no network I/O."""
        plugins = plugins or PluginHost.load(settings.plugins.disable)
        db = Database(
            settings.database_url,
            connect_timeout_s=settings.database.connect_timeout_s,
            echo=settings.database.echo,
        )
        storage = plugins.build_storage_backend(settings.storage.driver, settings.storage.options,
                                                settings.data_dir)
        auth_backends = {
            name: plugins.build_auth_backend(name, settings.auth.backend_options.get(name, {}))
            for name in settings.auth.backends
        }
        secret = settings.secret_key_bytes()
        audit = AuditLog(db, settings.audit_key_bytes(), settings.data_dir / "audit_head")
        sessions = SessionService(db, auth_backends, settings.auth, secret, audit)
        from .bus.connect import bus_from_settings
        from .media.engine import MediaEngine
        from .media_control import MediaControl

        ctx = cls(settings, plugins, db, storage, auth_backends, sessions, audit, secret)
        ctx.transports = {
            name: plugins.build_transport(name, settings.live.transport_options.get(name, {}))
            for name in sorted(plugins.transports)
        }
        ctx.cameras = CameraService(plugins, settings.cameras.control_timeout_s)
        ctx.bus = bus_from_settings(settings, "valt-app")
        # The media engine gets what it uses by name: no app context, no database.
        ctx.engine = (MediaEngine(settings, storage, ctx.cameras, ctx.bus, lease_s=settings.bus.lease_s)
                      if settings.media.embedded else None)
        ctx.media = MediaControl(settings, db, storage, plugins, audit, ctx.bus, ctx.engine, secret=secret)
        if ctx.engine is not None:
            from .media.ingest import PushIngest

            ctx.push = PushIngest(settings, ctx.transports, ctx.engine)
        from .auth.live_access import LiveAccess

        ctx.live = LiveAccess(db, secret, audit, ctx.media, settings.live.recheck_s)
        from .review import ReviewService

        ctx.review = ReviewService(settings.data_dir, audit)
        from .uploads import UploadService

        # Written through the app's own storage backend and indexed by the app's index writer.
        ctx.uploads = UploadService(settings, db, storage, ctx.media.index, audit)
        from .auth.directory_sync import DirectorySync
        from .users import change_user

        async def disable_user(user_id: int) -> None:
            await change_user(ctx, user_id, disabled=True)

        ctx.directory_sync = DirectorySync(db, auth_backends, audit, settings.auth.sync_minutes * 60,
                                           disable_user=disable_user, access_changed=ctx.live.user_changed)
        return ctx


def get_context() -> ValtContext:
    """The context of the app handling the current request."""
    return current_app.extensions["valt"]
