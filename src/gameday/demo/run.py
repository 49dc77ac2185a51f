"""Start the demo service from its environment (the container contract of the image catalog).

    HOST (127.0.0.1)  PORT (8080)  DEMO_VERSION (0.0.0-dev)  DEMO_FAULT ("")
    DATABASE_URL (unset: in-memory store)  DEMO_CREATE_SCHEMA (0)
    DEMO_SHUTDOWN_GRACE (5 s to finish in-flight requests on SIGTERM)  DEMO_ACCESS_LOG (0)

A bad value exits 2 with one line naming the variable; ``crash-on-start`` exits 1.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass

from gameday.demo.faults import FaultError, Faults, parse_faults


class BadSetting(ValueError):
    pass


@dataclass(frozen=True)
class Config:
    host: str
    port: int
    version: str
    faults: Faults
    database_url: str | None
    create_schema: bool
    shutdown_grace: float
    access_log: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        host = env.get("HOST") or "127.0.0.1"
        if host != "localhost":
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                raise BadSetting(f"HOST={host!r} is not an IP address (give a 127.x.y.z address)") from None
            if not loopback:
                raise BadSetting(f"HOST={host} is not a loopback address (the demo only listens on 127.0.0.0/8)")
        port_text = env.get("PORT") or "8080"
        if not port_text.isdigit() or int(port_text) > 65535:
            raise BadSetting(f"PORT={port_text!r} is not a port number (give 0-65535)")
        try:
            faults = parse_faults(env.get("DEMO_FAULT", ""))
        except FaultError as exc:
            raise BadSetting(f"DEMO_FAULT: {exc}") from None
        grace_text = env.get("DEMO_SHUTDOWN_GRACE") or "5"
        try:
            grace = float(grace_text)
        except ValueError:
            raise BadSetting(f"DEMO_SHUTDOWN_GRACE={grace_text!r} is not a number of seconds") from None
        return cls(
            host=host,
            port=int(port_text),
            version=env.get("DEMO_VERSION") or "0.0.0-dev",
            faults=faults,
            database_url=env.get("DATABASE_URL") or None,
            create_schema=_flag(env, "DEMO_CREATE_SCHEMA"),
            shutdown_grace=grace,
            access_log=_flag(env, "DEMO_ACCESS_LOG"),
        )


def _flag(env: Mapping[str, str], name: str) -> bool:
    value = env.get(name, "0").strip().lower()
    if value not in ("", "0", "1", "true", "false", "yes", "no"):
        raise BadSetting(f"{name}={value!r} is not a flag (give 0 or 1)")
    return value in ("1", "true", "yes")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(env: Mapping[str, str] | None = None) -> int:
    try:
        config = Config.from_env(os.environ if env is None else env)
    except BadSetting as exc:
        _log(f"demo: {exc}")
        return 2
    if config.faults.crash_on_start:
        # What a release that cannot start prints: a missing setting found at boot.
        _log(f"demo {config.version} starting")
        _log("ERROR startup failed: KeyError: 'ORDERS_PAYMENT_GATEWAY_URL' "
             "(required setting ORDERS_PAYMENT_GATEWAY_URL is not set)")
        return 1

    from gameday.demo.server import App, DemoServer
    from gameday.demo.store import open_store

    store = open_store(config.database_url, create_schema=config.create_schema)
    app = App(version=config.version, faults=config.faults, store=store)
    try:
        server = DemoServer((config.host, config.port), app, access_log=config.access_log)
    except OSError as exc:
        _log(f"demo: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}")
        return 1

    def on_signal(signum: int, frame: object) -> None:
        if not app.draining.is_set():
            app.draining.set()
            # shutdown() waits for serve_forever, which runs in this (main) thread.
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    host, port = str(server.server_address[0]), int(server.server_address[1])
    faults = ",".join(config.faults.describe()) or "none"
    _log(f"demo {config.version} listening on http://{host}:{port} (backend {store.backend}, faults {faults})")
    threading.Thread(target=_startup_check, args=(app,), daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.05)
    finally:
        server.server_close()
        drained = server.drain(config.shutdown_grace)
        store.close()
        _log(f"demo {config.version} stopped" + ("" if drained else " (in-flight requests cut off)"))
    return 0


def _startup_check(app: object) -> None:
    """Check the database, schema and needed column once at start, and say what is wrong."""
    from gameday.demo.server import App

    assert isinstance(app, App)
    problem = app.not_ready_because()
    _log(f"WARNING not ready: {problem}" if problem else f"demo {app.version} ready")
