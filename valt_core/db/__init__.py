"""The database: async engine, sessions, and the Alembic migrations that shape it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from ..errors import DatabaseError
from ..files import make_private_dir, open_private, tighten
from ..redact import redact

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***`` (safe for messages and logs)."""
    return redact(url)


def alembic_config() -> AlembicConfig:
    """An Alembic configuration pointing at Valt's migration scripts."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


class Database:
    """The engine and session factory for one database URL."""

    def __init__(self, url: str, *, connect_timeout_s: float = 5.0, echo: bool = False) -> None:
        self.url = url
        connect_args: dict[str, Any] = {}
        kwargs: dict[str, Any] = {"echo": echo}
        if url.startswith("sqlite"):
            path = url.split(":///", 1)[-1]
            if path and path != ":memory:":
                _private_sqlite_file(Path(path))
            connect_args["timeout"] = 30
        elif url.startswith("mysql") or url.startswith("mariadb"):
            connect_args["connect_timeout"] = int(max(1, connect_timeout_s))
            kwargs["pool_recycle"] = 3600
            kwargs["pool_pre_ping"] = True
        self.connect_timeout_s = connect_timeout_s
        self.engine: AsyncEngine = create_async_engine(url, connect_args=connect_args, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    def session(self) -> AsyncSession:
        """A new session; use as ``async with db.session() as s:``."""
        return self.sessions()

    async def _run_sync(self, fn: Any) -> Any:
        try:
            async with asyncio.timeout(self.connect_timeout_s + 60):
                async with self.engine.begin() as conn:
                    return await conn.run_sync(fn)
        except DatabaseError:
            raise
        except (OSError, TimeoutError, sa_exc.OperationalError, sa_exc.InterfaceError) as err:
            cause = getattr(err, "orig", None) or err
            raise DatabaseError(f"cannot reach database {redact_url(self.url)}: {cause}") from err
        except sa_exc.DBAPIError as err:
            raise DatabaseError(f"cannot use database {redact_url(self.url)}: {err.orig}") from err

    async def current_revision(self) -> str | None:
        """The schema revision the database is at (``None`` when empty)."""
        return await self._run_sync(lambda c: MigrationContext.configure(c).get_current_revision())

    @staticmethod
    def head_revision() -> str | None:
        """The newest schema revision this version of Valt knows."""
        return ScriptDirectory.from_config(alembic_config()).get_current_head()

    async def upgrade(self) -> tuple[str | None, str | None]:
        """Apply pending migrations; returns (revision before, revision after)."""
        before = await self.current_revision()

        def run(conn: Any) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

        await self._run_sync(run)
        if self.url.startswith("sqlite"):
            # A migration may switch SQLite's foreign keys off for a table rebuild; a pooled
            # connection must not keep that: new connections get them on again.
            await self.engine.dispose()
        return before, await self.current_revision()

    async def check_schema(self) -> None:
        """Raise :class:`DatabaseError` unless the schema is at the newest revision."""
        current, head = await self.current_revision(), self.head_revision()
        if current != head:
            state = "empty" if current is None else f"at revision {current}"
            raise DatabaseError(
                f"database {redact_url(self.url)} is {state}, this Valt needs {head}: "
                "run `valt db upgrade`"
            )

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()


def _private_sqlite_file(path: Path) -> None:
    # Camera passwords, password hashes and the audit log: 0600 in a 0700 directory. An empty
    # file is an empty database; SQLite gives its -wal and -shm files the database's own mode.
    make_private_dir(path.parent)
    os.close(open_private(path, os.O_WRONLY | os.O_CREAT))
    for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        tighten(extra)  # left by an older version with the umask's mode


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    # WAL lets the web UI read while the recorder writes.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.close()


def is_transient_db_error(err: BaseException) -> bool:
    """True for a database that is down or full (worth retrying), not for a bad statement."""
    from sqlalchemy import exc as sa_exc

    if isinstance(err, (DatabaseError, OSError, TimeoutError, sa_exc.OperationalError, sa_exc.InterfaceError)):
        return True
    return isinstance(err, sa_exc.DBAPIError) and bool(err.connection_invalidated)
