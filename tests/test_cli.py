"""The ``valt`` command run as a person runs it: real processes, real HTTP, real exit codes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

VALT = [sys.executable, "-m", "valt_core"]
FAST_AUTH_ENV = {"VALT_AUTH__BACKEND_OPTIONS": json.dumps(
    {"local": {"time_cost": 1, "memory_cost_kib": 8192, "parallelism": 1}})}


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VALT_")}
    # A dict, not keywords: a test may give its own VALT_AUTH__BACKEND_OPTIONS (keywords would clash).
    env.update({"VALT_DATA_DIR": str(tmp_path / "data"), **FAST_AUTH_ENV, **extra})
    return env


def run(tmp_path, *args, input=None, **env):
    return subprocess.run(VALT + list(args), capture_output=True, text=True, input=input,
                          env=_env(tmp_path, **env), cwd=tmp_path, timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


class Server:
    """A ``valt`` server process; stopped with SIGTERM when the test ends."""

    def __init__(self, tmp_path, *args, **env):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"server-{self.port}.log"
        self.proc = subprocess.Popen(VALT + list(args) + ["--port", str(self.port)],
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
                                     env=_env(tmp_path, **env), cwd=tmp_path)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                if http("GET", self.base + "/api/v1/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server did not answer:\n{self.log.read_text()}")

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=15)


def record_one_sim_camera(server: Server, password: str = "boss password") -> tuple[str, dict, dict]:
    """Sign in as ``boss``, add a room with one small sim camera and start recording it.

    Returns the token, the room and the started recording.
    """
    token = http("POST", server.base + "/api/v1/auth/login", {"username": "boss", "password": password})[1]["token"]
    room = http("POST", server.base + "/api/v1/rooms", {"name": "R"}, token)[1]
    http("POST", server.base + "/api/v1/cameras", {"name": "c", "driver": "sim", "room_id": room["id"],
                                                   "config": {"width": 320, "height": 240, "keyframe_interval": 25}},
         token)
    status, rec = http("POST", server.base + f"/api/v1/rooms/{room['id']}/record/start", None, token)
    assert status == 201, rec
    return token, room, rec


@pytest.mark.parametrize(
    "setup, env, exit_code, message",
    [
        ("[server]\nprot = 1\n", {}, 2,
         "bad settings (valt.toml and VALT_* environment): server.prot: unknown setting"),
        ("[server]\nport = 'x'\n", {}, 2, "server.port: Input should be a valid integer"),
        ("", {"VALT_STORAGE_DRIVER": "nfs"}, 2, "unknown storage driver 'nfs' (known: local"),
        ("", {"VALT_AUTH__BACKENDS": '["kerberos"]'}, 2, "unknown auth backend 'kerberos'"),
        ("", {"VALT_DATABASE_URL": "mysql+aiomysql://valt:topsecret@127.0.0.1:1/valt"}, 1,
         "cannot reach database mysql+aiomysql://valt:***@127.0.0.1:1/valt"),
    ],
)
def test_bad_settings_end_with_one_clear_line(tmp_path, setup, env, exit_code, message):
    (tmp_path / "valt.toml").write_text(setup)
    r = run(tmp_path, "--config", "valt.toml", "db", "upgrade", **env)
    assert r.returncode == exit_code, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr and "topsecret" not in r.stderr + r.stdout


def test_serve_refuses_an_unmigrated_database(tmp_path):
    r = run(tmp_path, "serve", "--port", str(free_port()))
    assert r.returncode == 1
    assert "is empty, this Valt needs" in r.stderr and "run `valt db upgrade`" in r.stderr


def test_plugins_command_lists_bundled_plugins(tmp_path):
    r = run(tmp_path, "plugins", "--json")
    assert r.returncode == 0, r.stderr
    rows = {(p["group"], p["name"]): p for p in json.loads(r.stdout)}
    assert rows[("valt.cameras", "sim")]["distribution"] == "valt-camera-sim"
    table = run(tmp_path, "plugins").stdout
    assert re.search(r"valt\.auth\s+local\s+valt-auth-local\s+0\.1\.0", table)


def test_upgrade_add_user_serve_and_sign_in(tmp_path, database_url):
    db = {"VALT_DATABASE_URL": database_url}
    up = run(tmp_path, "db", "upgrade", **db)
    assert up.returncode == 0 and "database at revision" in up.stdout, up.stderr
    assert run(tmp_path, "db", "check", **db).returncode == 0
    add = run(tmp_path, "user", "add", "chief", "--admin", "--password-stdin", input="chief's password\n", **db)
    assert add.returncode == 0 and "role admin" in add.stdout, add.stderr
    again = run(tmp_path, "user", "add", "chief", "--password-stdin", input="another password\n", **db)
    assert again.returncode == 1 and "already exists" in again.stderr
    server = Server(tmp_path, "serve", **db)
    try:
        status, body = http("POST", server.base + "/api/v1/auth/login",
                            {"username": "chief", "password": "chief's password"})
        assert status == 200 and body["user"]["role"] == "admin"
        assert http("POST", server.base + "/api/v1/auth/login",
                    {"username": "chief", "password": "wrong"})[0] == 401
        status, rooms = http("GET", server.base + "/api/v1/rooms", token=body["token"])
        assert status == 200 and rooms == []
        assert http("GET", server.base + "/api/v1/rooms")[0] == 401
    finally:
        assert server.stop() == 0
    assert "chief's password" not in server.output()


def test_user_add_without_a_terminal_asks_for_password_stdin(tmp_path):
    run(tmp_path, "db", "upgrade")
    r = run(tmp_path, "user", "add", "x")
    assert r.returncode == 2 and "--password-stdin" in r.stderr


def test_demo_runs_with_simulated_cameras_and_a_printed_password(tmp_path):
    server = Server(tmp_path, "demo")
    try:
        match = re.search(r"Sign in as admin with password: (\S+)", server.output())
        assert match, server.output()
        status, body = http("POST", server.base + "/api/v1/auth/login",
                            {"username": "admin", "password": match.group(1)})
        assert status == 200, body
        rooms = http("GET", server.base + "/api/v1/rooms", token=body["token"])[1]
        assert len(rooms) == 2
        assert all(len(r["cameras"]) == 2 and {c["driver"] for c in r["cameras"]} == {"sim"} for r in rooms)
    finally:
        assert server.stop() == 0
    # A second start keeps the rooms and sets the password it prints (here the chosen one).
    server = Server(tmp_path, "demo", VALT_DEMO_PASSWORD="chosen demo pw")
    try:
        status, body = http("POST", server.base + "/api/v1/auth/login",
                            {"username": "admin", "password": "chosen demo pw"})
        assert status == 200
        assert len(http("GET", server.base + "/api/v1/cameras", token=body["token"])[1]) == 4
    finally:
        server.stop()


def test_operator_commands_unlock_passwd_disable_and_list_a_user(tmp_path):
    """The way back in for a locked-out admin, and the way out for a leaver, on a running server."""
    assert run(tmp_path, "db", "upgrade").returncode == 0
    run(tmp_path, "user", "add", "chief", "--admin", "--password-stdin", input="chief's password\n")
    server = Server(tmp_path, "serve")
    try:
        login = {"username": "chief", "password": "chief's password"}
        for _ in range(5):
            assert http("POST", server.base + "/api/v1/auth/login", {**login, "password": "guess"})[0] == 401
        assert http("POST", server.base + "/api/v1/auth/login", login)[0] == 401  # locked here
        listed = run(tmp_path, "user", "list")
        assert re.search(r"chief\s+Administrators\s+enabled\s+never\s+127\.0\.0\.1", listed.stdout), listed.stdout
        unlocked = run(tmp_path, "user", "unlock", "chief")
        assert unlocked.returncode == 0 and "unlocked 'chief'" in unlocked.stdout, unlocked.stderr
        status, body = http("POST", server.base + "/api/v1/auth/login", login)
        assert status == 200
        token = body["token"]
        changed = run(tmp_path, "user", "passwd", "chief", "--password-stdin", input="a new password\n")
        assert changed.returncode == 0, changed.stderr
        assert http("GET", server.base + "/api/v1/auth/me", token=token)[0] == 401  # signed out
        assert http("POST", server.base + "/api/v1/auth/login", login)[0] == 401
        status, body = http("POST", server.base + "/api/v1/auth/login", {**login, "password": "a new password"})
        assert status == 200
        assert run(tmp_path, "user", "disable", "chief").returncode == 0
        assert http("GET", server.base + "/api/v1/auth/me", token=body["token"])[0] == 401
        assert http("POST", server.base + "/api/v1/auth/login", {**login, "password": "a new password"})[0] == 401
        assert "disabled" in run(tmp_path, "user", "list").stdout
        assert run(tmp_path, "user", "enable", "chief").returncode == 0
        assert http("POST", server.base + "/api/v1/auth/login", {**login, "password": "a new password"})[0] == 200
        missing = run(tmp_path, "user", "unlock", "nobody")
        assert missing.returncode == 1 and "no user 'nobody'" in missing.stderr
    finally:
        assert server.stop() == 0
    actions = run(tmp_path, "audit", "list", "--action", "user", "--json").stdout
    assert all(a in actions for a in ("user.unlock", "user.passwd", "user.disable", "user.enable"))
    assert "a new password" not in server.output()
