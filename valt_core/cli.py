"""The ``valt`` command: serve, demo, plugins, users and database upgrades.

Every failure a person can cause (bad settings, unreachable database, broken plugin) ends
with one line naming the cause and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import secrets
import signal
import sys
from pathlib import Path
from typing import Sequence

from .errors import ConfigError, PluginError, ValtError
from .redact import install_log_redaction

log = logging.getLogger("valt")

EXIT_CONFIG = 2
EXIT_FAILURE = 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="valt", description="Valt video observation and recording platform")
    p.add_argument("--config", metavar="PATH", help="settings file (TOML); default: $VALT_CONFIG")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the application server")
    serve.add_argument("--host", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default 8080)")

    demo = sub.add_parser("demo", help="run on embedded defaults with simulated cameras and a demo admin")
    demo.add_argument("--host", help="listen address (default 127.0.0.1)")
    demo.add_argument("--port", type=int, help="listen port (default 8080)")

    plugins = sub.add_parser("plugins", help="list installed plugins")
    plugins.add_argument("--json", action="store_true", help="print JSON")

    user = sub.add_parser("user", help="manage users")
    user_sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = user_sub.add_parser("add", help="create a user")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="give the admin role")
    add.add_argument("--role", choices=["admin", "operator", "viewer"], help="role (default viewer)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    user_sub.add_parser("list", help="list users: role, state, last sign-in, locks")
    passwd = user_sub.add_parser("passwd", help="set a user's password (signs them out everywhere)")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    unlock = user_sub.add_parser("unlock", help="end the sign-in locks of a user name")
    unlock.add_argument("name")
    disable = user_sub.add_parser("disable", help="disable a user: signed out, live streams closed")
    disable.add_argument("name")
    enable = user_sub.add_parser("enable", help="enable a disabled user again")
    enable.add_argument("name")
    user_sub.add_parser("sync", help="check directory users (ldap) against the directory now: "
                                     "disable those gone, update their groups")

    verify = sub.add_parser("verify", help="check a recording's segments against the index and hash chain")
    verify.add_argument("recording_id", type=int)

    audit = sub.add_parser("audit", help="the audit log: check its chain, list events")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    audit_sub.add_parser("verify", help="check the whole keyed hash chain (exit 3 when it does not hold)")
    listing = audit_sub.add_parser("list", help="list events, newest first")
    listing.add_argument("--actor", help="user name of who acted")
    listing.add_argument("--action", help="action or family of actions, e.g. camera.live")
    listing.add_argument("--target", metavar="TYPE[:ID]", help="what was acted on, e.g. recording:12")
    listing.add_argument("--since", type=_aware_time, help="ISO 8601 time, e.g. 2026-12-01T08:00Z")
    listing.add_argument("--until", type=_aware_time, help="ISO 8601 time")
    listing.add_argument("--limit", type=int, default=50, help="at most this many events (default 50)")
    listing.add_argument("--json", action="store_true", help="print JSON lines")

    media = sub.add_parser("media-server", help="run a media server (--name NAME), or enrol and list them")
    media.add_argument("--name", help="run as this enrolled media server: joins [bus] url and records its cameras")
    media.add_argument("--pool", default="", help="its pool (cameras of a lost server move within the pool)")
    media_sub = media.add_subparsers(dest="media_command", metavar="ACTION")
    enrol = media_sub.add_parser("add", help="enrol a media server: its row and NATS nkey (the seed written once)")
    enrol.add_argument("server_name", metavar="NAME")
    enrol.add_argument("--seed-file", required=True, type=Path, help="new file for its nkey seed (0600)")
    enrol.add_argument("--live-mode", choices=("relayed", "direct"), default="relayed")
    media_sub.add_parser("list", help="list media servers: state, last seen, version, pool")
    nats = sub.add_parser("nats-config", help="print the NATS authorization block (app server and media servers)")
    nats.add_argument("--app-seed-file", required=True, type=Path,
                      help="the app server's nkey seed file ([bus] nkey_seed_file); made when absent")

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_sub.add_parser("upgrade", help="apply pending migrations")
    db_sub.add_parser("check", help="exit non-zero unless the schema is current")
    return p


def _aware_time(text: str):
    from datetime import datetime, timezone

    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from err
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``valt`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()
    # Alembic narrates every schema check at INFO; Valt reports upgrades itself.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        return _run(args)
    except (ConfigError, PluginError) as err:
        print(f"valt: error: {err.message}", file=sys.stderr)
        return EXIT_CONFIG
    except ValtError as err:
        print(f"valt: error: {err.message}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


def _run(args: argparse.Namespace) -> int:
    from .settings import load_settings

    settings = load_settings(args.config)
    if args.command == "plugins":
        return _plugins(settings, args.json)
    if args.command in ("serve", "demo"):
        if args.host:
            settings.server.host = args.host
        if args.port is not None:
            settings.server.port = args.port
    return asyncio.run(_async_command(args, settings))


def _plugins(settings, as_json: bool) -> int:
    from .plugins import PluginHost

    host = PluginHost.load(settings.plugins.disable)
    rows = [p.as_dict() for p in host.plugins]
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    widths = [max(len(r[k]) for r in rows + [{k: k}]) for k in ("group", "name", "distribution", "version")]
    for row in [{"group": "GROUP", "name": "NAME", "distribution": "DISTRIBUTION", "version": "VERSION"}] + rows:
        print("  ".join(row[k].ljust(w) for k, w in zip(("group", "name", "distribution", "version"), widths)).rstrip())
    return 0


async def _async_command(args: argparse.Namespace, settings) -> int:
    from .context import ValtContext

    if args.command == "db":
        ctx = ValtContext.build(settings)
        try:
            if args.db_command == "upgrade":
                before, after = await ctx.db.upgrade()
                print(f"database at revision {after}" + ("" if before == after else f" (was {before or 'empty'})"))
            else:
                await ctx.db.check_schema()
                print(f"database at revision {ctx.db.head_revision()}: current")
        finally:
            await ctx.close()
        return 0
    if args.command == "user":
        if args.user_command == "add":
            return await _user_add(args, settings)
        if args.user_command == "sync":
            return await _user_sync(settings)
        return await _user_manage(args, settings)
    if args.command == "verify":
        return await _verify(args, settings)
    if args.command == "audit":
        return await _audit(args, settings)
    if args.command == "demo":
        return await _demo(settings)
    if args.command == "media-server":
        return await _media_server(args, settings)
    if args.command == "nats-config":
        return await _nats_config(args, settings)
    return await _serve(settings)


async def _media_server(args: argparse.Namespace, settings) -> int:
    from . import mediaserver

    if args.media_command is None:
        if not args.name:
            raise ConfigError("give --name NAME (an enrolled media server) or an action: add, list")
        return await mediaserver.run_media_server(settings, args.name, args.pool)
    from .context import ValtContext

    ctx = ValtContext.build(settings)
    try:
        await ctx.db.check_schema()
        if args.media_command == "add":
            if args.seed_file.exists():
                raise ConfigError(f"{args.seed_file} exists: give another file, or remove it first")
            row, seed = await mediaserver.enrol(ctx, args.server_name, args.pool, args.live_mode)
            mediaserver.write_seed(args.seed_file, seed)
            print(f"media server {args.server_name} enrolled; nkey {row.nkey}\n"
                  f"its seed is in {args.seed_file} (keep it secret: give it to that server's [bus] nkey_seed_file)\n"
                  "then add it to NATS: valt nats-config --app-seed-file ... (and reload nats-server)")
            return 0
        from sqlmodel import select

        from .db.models import MediaServer

        async with ctx.db.session() as s:
            rows = (await s.exec(select(MediaServer).order_by(MediaServer.name))).all()
        for row in rows:
            seen = row.last_seen_at.isoformat(timespec="seconds") if row.last_seen_at else "never"
            print(f"{row.name}\t{row.status}\tlast seen {seen}\tversion {row.version or '?'}\t"
                  f"pool {row.pool or 'default'}\t{row.live_mode}")
        return 0
    finally:
        await ctx.close()


async def _nats_config(args: argparse.Namespace, settings) -> int:
    from . import mediaserver
    from .context import ValtContext

    if args.app_seed_file.exists():
        import nkeys

        app_public = nkeys.from_seed(args.app_seed_file.read_bytes().strip()).public_key.decode()
    else:
        seed, app_public = mediaserver.new_nkey_seed()
        mediaserver.write_seed(args.app_seed_file, seed)
    ctx = ValtContext.build(settings)
    try:
        await ctx.db.check_schema()
        block = await mediaserver.nats_authorization(ctx, app_public)
    finally:
        await ctx.close()
    print(json.dumps({"authorization": block}, indent=2))
    return 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password again: ") != password:
            raise ConfigError("the passwords differ")
    else:
        raise ConfigError("no terminal to ask for the password: use --password-stdin")
    if not password:
        raise ConfigError("the password is empty")
    return password


async def _user_add(args: argparse.Namespace, settings) -> int:
    from .context import ValtContext
    from .users import create_user

    role = "admin" if args.admin else (args.role or "viewer")
    password = _read_password(args.password_stdin)
    ctx = ValtContext.build(settings)
    try:
        await ctx.db.check_schema()
        user = await create_user(ctx, args.name, password, role=role)
        await ctx.audit.record("user.create", actor_name="cli", target_type="user", target_id=user.id,
                               detail={"username": user.username, "role": role})
    finally:
        await ctx.close()
    print(f"created user {user.username!r} with role {role}")
    return 0


async def _user_sync(settings) -> int:
    from .context import ValtContext

    ctx = ValtContext.build(settings)
    try:
        await ctx.db.check_schema()
        results = await ctx.directory_sync.run_once()
    finally:
        await ctx.close()
    if not results:
        print("no enabled auth backend looks people up in a directory: nothing to sync")
    for name, result in results.items():
        state = "FAILED (the directory could not be reached; no one was disabled)" if result.failed else "done"
        print(f"{name}: {state}: {result.checked} checked, {result.disabled} disabled")
    return 1 if any(r.failed for r in results.values()) else 0


async def _user_manage(args: argparse.Namespace, settings) -> int:
    from .context import ValtContext
    from .users import change_user, find_user

    password = _read_password(args.password_stdin) if args.user_command == "passwd" else None
    ctx = ValtContext.build(settings)
    try:
        await ctx.db.check_schema()
        if args.user_command == "list":
            return await _user_list(ctx)
        user = await find_user(ctx, args.name)
        if args.user_command == "unlock":
            cleared = await ctx.sessions.attempts.unlock(user.username)
            said = f"unlocked {user.username!r}" + ("" if cleared else " (it was not locked)")
        elif args.user_command == "passwd":
            await change_user(ctx, user.id, password=password)
            said = f"set a new password for {user.username!r}; their sessions are signed out"
        else:
            await change_user(ctx, user.id, disabled=args.user_command == "disable")
            said = (f"disabled {user.username!r}: signed out, live streams close within "
                    f"{settings.live.recheck_s:g} s" if args.user_command == "disable"
                    else f"enabled {user.username!r}")
        await ctx.audit.record(f"user.{args.user_command}", actor_name="cli", target_type="user",
                               target_id=user.id, detail={"username": user.username})
    finally:
        await ctx.close()
    print(said)
    return 0


async def _user_list(ctx) -> int:
    from sqlmodel import select

    from .db.models import User
    from .users import groups_of

    async with ctx.db.session() as s:
        users = (await s.exec(select(User).order_by(User.username))).all()
    groups = await groups_of(ctx, [u.id for u in users])
    rows = [("NAME", "GROUPS", "STATE", "LAST SIGN-IN", "LOCKED FOR")]
    for u in users:
        locked = await ctx.sessions.attempts.locked_addresses(u.username)
        names = ", ".join(g.name for g in groups[u.id]) or "-"
        rows.append((u.username, names, "disabled" if u.disabled else "enabled",
                     u.last_login_at.isoformat(timespec="seconds") if u.last_login_at else "never",
                     ", ".join(locked) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
    return 0


async def _audit(args: argparse.Namespace, settings) -> int:
    import json

    from .audit import AuditQuery, event_json
    from .context import ValtContext

    ctx = ValtContext.build(settings)
    try:
        await ctx.db.check_schema()
        if args.audit_command == "verify":
            report = await ctx.audit.check()
            for problem in report.problems:
                print(f"PROBLEM: {problem}")
            if report.unkeyed:
                print(f"PROBLEM: {report.unkeyed} event(s) were written before the chain was keyed; "
                      "nothing proves them")
            await ctx.audit.record("audit.verify", actor_name="cli", detail={"intact": report.intact})
            verdict = "intact" if report.intact else "NOT intact"
            print(f"audit log: {report.events} event(s) checked, {verdict}")
            return 0 if report.intact else 3
        target_type, _, target_id = (args.target or "").partition(":")
        events = await ctx.audit.events(AuditQuery(
            actor=args.actor, action=args.action, target_type=target_type or None, target_id=target_id or None,
            since=args.since, until=args.until, limit=max(1, args.limit)))
    finally:
        await ctx.close()
    for e in events:
        if args.json:
            print(json.dumps(event_json(e), sort_keys=True))
        else:
            target = f"{e.target_type}:{e.target_id}" if e.target_type else "-"
            print(f"{e.id:>7}  {e.at.isoformat(timespec='seconds')}  {e.actor_name or '-':<16} {e.action:<26} "
                  f"{target:<16} {e.remote_addr or '-'}")
    return 0


async def _verify(args: argparse.Namespace, settings) -> int:
    from .context import ValtContext

    ctx = ValtContext.build(settings)
    try:
        await ctx.db.check_schema()
        if settings.bus.servers:
            # Segments kept by a media server's own storage are read from it over the bus.
            try:
                await ctx.bus.start()
            except ValtError as err:
                print(f"valt: the bus is not reachable ({err.message}); segments on media servers' own "
                      "storage cannot be checked", file=sys.stderr)
        report = await ctx.media.verify(args.recording_id)
        await ctx.audit.record("recording.verify", actor_name="cli", target_type="recording",
                               target_id=args.recording_id, detail={"ok": report.ok, "problems": len(report.problems)})
    finally:
        await ctx.bus.close()
        await ctx.close()
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    verdict = "intact" if report.ok else f"NOT intact ({len(report.problems)} problem(s))"
    print(f"recording {args.recording_id}: {report.segments} segment(s) checked, {verdict}")
    return 0 if report.ok else 3


async def _serve(settings, ctx=None, banner: str = "") -> int:
    from hypercorn.config import Config as HypercornConfig

    from .app import create_app

    server = settings.server
    config = HypercornConfig()
    config.bind = [f"{settings.server.host}:{settings.server.port}"]
    if server.tls:
        from .tls import certificate_for

        # First, as it needs nothing else: a bad certificate file is a one-line error, not a stack.
        cert = certificate_for(server.tls_cert, server.tls_key, settings.data_dir, server.host)
        config.certfile, config.keyfile = str(cert.cert_path), str(cert.key_path)
    app = create_app(settings, ctx.plugins if ctx else None)
    # Registered after create_app's own start-up, so it runs once the app and its media are up.
    app.before_serving(_freeze_startup_heap)
    context = app.extensions["valt"]
    # Check before binding the port, so a wrong setting fails with its cause, not a stack.
    await context.db.check_schema()
    await context.storage.check()
    listener = None
    if settings.server.send_buffer_kb:
        # Accepted sockets inherit the listening socket's buffer size, so bind it ourselves.
        listener = _listening_socket(settings.server.host, settings.server.port, settings.server.send_buffer_kb)
        config.bind = [f"fd://{listener.fileno()}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopping = asyncio.Event()

    async def end_live_then_stop() -> None:
        # Since Python 3.12 the listener's wait_closed() waits for every open connection, and a
        # live view never ends by itself: end the live streams first, or shutdown would hang.
        await stop.wait()
        context.live.server_stopping()
        stopping.set()

    loop.create_task(end_live_then_stop(), name="end-live-on-stop")
    listeners = [_listen(app, config, stop, server.host, server.port, stopping)]
    url = f"{'https' if server.tls else 'http'}://{server.host}:{server.port}/"
    if server.redirect_port is not None:
        from .tls import RedirectToHttps

        redirect = HypercornConfig()
        redirect.bind = [f"{server.host}:{server.redirect_port}"]
        redirect.accesslog, redirect.errorlog = None, config.errorlog
        listeners.append(_listen(RedirectToHttps(server.port, server.host), redirect, stop,
                                 server.host, server.redirect_port, stopping))
        url += f" (plain HTTP on port {server.redirect_port} redirects there)"
    print(f"Valt is starting on {url}" + (f"\n{banner}" if banner else ""), flush=True)
    try:
        # Every listener runs to its end (a failed one stops the others), then the first error is raised.
        failures = [r for r in await asyncio.gather(*listeners, return_exceptions=True) if r is not None]
    finally:
        if listener is not None:
            listener.close()
    if failures:
        raise failures[0]
    return 0


async def _freeze_startup_heap() -> None:
    from .heap import freeze_startup_heap

    freeze_startup_heap()


async def _listen(app, config, stop: asyncio.Event, host: str, port: int, stopping: asyncio.Event) -> None:
    import hypercorn.asyncio

    try:
        await hypercorn.asyncio.serve(app, config, shutdown_trigger=stopping.wait)
    except OSError as err:
        raise ConfigError(f"cannot listen on {host}:{port}: {err.strerror}") from err
    finally:
        stop.set()  # one listener gone (stopped or failed): the others stop too


def _listening_socket(host: str, port: int, send_buffer_kb: int):
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_kb * 1024)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {err.strerror}") from err
    sock.set_inheritable(True)
    return sock


DEMO_CAMERA = {"width": 640, "height": 360, "fps": 25, "audio": True}
DEMO_ROOMS = {
    "Interview Room 1": ["Room 1 wide", "Room 1 table"],
    "Interview Room 2": ["Room 2 wide", "Room 2 table"],
}


async def _demo(settings) -> int:
    from sqlmodel import select

    from .auth.access import set_role
    from .context import ValtContext
    from .db.models import Camera, Room, User
    from .users import create_user

    password = os.environ.get("VALT_DEMO_PASSWORD") or secrets.token_urlsafe(12)
    if len(password) < 8:
        raise ConfigError("VALT_DEMO_PASSWORD must have at least 8 characters")
    ctx = ValtContext.build(settings)
    try:
        await ctx.db.upgrade()
        async with ctx.db.session() as s:
            admin = (await s.exec(select(User).where(User.username == "admin"))).first()
            if admin is not None:
                # Each demo start sets the password it prints, so the printed one always works.
                backend = ctx.sessions.password_backend()
                admin.password_hash = backend.hash_password(password)
                admin.disabled = False
                s.add(admin)
                await set_role(s, admin.id, "admin")
                await s.commit()
                await ctx.sessions.attempts.unlock("admin")
        if admin is None:
            await create_user(ctx, "admin", password, role="admin", display_name="Demo admin")
        async with ctx.db.session() as s:
            for room_name, cameras in DEMO_ROOMS.items():
                room = (await s.exec(select(Room).where(Room.name == room_name))).first()
                if room is None:
                    room = Room(name=room_name, description="Simulated interview room")
                    s.add(room)
                    await s.flush()
                for cam_name in cameras:
                    if (await s.exec(select(Camera).where(Camera.name == cam_name))).first() is None:
                        driver = ctx.plugins.build_camera_driver("sim", DEMO_CAMERA)
                        s.add(Camera(name=cam_name, driver="sim", room_id=room.id,
                                     config=driver.config.model_dump(mode="json")))
            await s.commit()
    finally:
        await ctx.close()
    banner = f"Sign in as admin with password: {password}"
    return await _serve(settings, ctx, banner)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
