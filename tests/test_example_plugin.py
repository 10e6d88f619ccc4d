"""A third-party camera driver, installed with pip from its own package, loads like a bundled one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from .conftest import REPO

EXAMPLE = REPO / "examples" / "valt-camera-hikvision"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The example package pip-installed into its own directory (not into the dev virtualenv)."""
    target = tmp_path_factory.mktemp("site")
    # Build from a copy: setuptools leaves build metadata beside the sources it builds.
    source = tmp_path_factory.mktemp("src") / EXAMPLE.name
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("tests", "*.egg-info", "build", "__pycache__"))
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                        "--target", str(target), str(source)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    env = {**os.environ, "PYTHONPATH": str(target), "VALT_DATA_DIR": str(target.parent / "data")}
    return env


def test_valt_plugins_lists_the_installed_driver(installed):
    r = subprocess.run([sys.executable, "-m", "valt_core", "plugins", "--json"], env=installed,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    rows = {(p["group"], p["name"]): p for p in json.loads(r.stdout)}
    assert rows[("valt.cameras", "hikvision")] == {
        "group": "valt.cameras", "name": "hikvision", "distribution": "valt-camera-hikvision",
        "version": "0.1.0", "module": "valt_camera_hikvision.plugin"}
    # Bundled drivers are listed the same way, from the same entry-point group.
    assert rows[("valt.cameras", "sim")]["module"] == "valt_camera_sim.plugin"


SCRIPT = r"""
import asyncio, json
from valt_core.app import create_app
from valt_core.settings import load_settings
from valt_core.users import create_user

async def main():
    app = create_app(load_settings())
    ctx = app.extensions["valt"]
    await ctx.db.upgrade()
    driver = ctx.plugins.build_camera_driver("hikvision", {"host": "10.1.2.3", "password": "p@ss/word"})
    out = {"uri": await driver.stream_uri("main"), "sub": await driver.stream_uri("sub")}
    async with app.test_app() as test_app:
        client = test_app.test_client()
        await create_user(ctx, "integrator", "integrator pw", role="admin")
        signed_in = await client.post("/api/v1/auth/login",
                                      json={"username": "integrator", "password": "integrator pw"})
        token = (await signed_in.get_json())["token"]
        h = {"Authorization": "Bearer " + token}
        r = await client.post("/api/v1/cameras", headers=h, json={
            "name": "door", "driver": "hikvision", "config": {"host": "10.1.2.3", "password": "p@ss/word"}})
        out["status"] = r.status_code
        out["camera"] = await r.get_json()
        bad = await client.post("/api/v1/cameras", headers=h, json={"name": "x", "driver": "hikvision", "config": {}})
        out["bad"] = [bad.status_code, (await bad.get_json())["message"]]
    print(json.dumps(out))

asyncio.run(main())
"""


def test_driver_works_through_the_core_like_a_bundled_one(installed):
    r = subprocess.run([sys.executable, "-c", SCRIPT], env=installed, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["uri"] == "rtsp://admin:p%40ss%2Fword@10.1.2.3:554/Streaming/Channels/101"
    assert out["sub"].endswith("/Streaming/Channels/102")
    assert out["status"] == 201
    cam = out["camera"]
    assert cam["driver"] == "hikvision" and set(cam["capabilities"]) == {"stream", "snapshot"}
    assert cam["config"]["password"] == "********" and "p@ss" not in json.dumps(cam)
    assert out["bad"][0] == 400 and "host" in out["bad"][1]
