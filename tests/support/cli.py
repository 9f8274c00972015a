"""Run ``plnbot`` as a subprocess, the way a user (or a script) does."""

from __future__ import annotations

import atexit
import json
import locale
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def clean_environment(env: dict | None = None) -> dict[str, str]:
    """The caller's environment without the developer's plnbot configuration."""
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("PLNBOT_", "DATABASE_URL", "X_", "MASTODON_",
                                        "BLUESKY_", "DISCORD_"))}
    environment["PYTHONPATH"] = str(ROOT)
    environment.update(env or {})
    return environment


class LivePlnbot:
    """``plnbot …`` running with its stdin held open, as a person at a console: write
    lines, wait for what it prints, close stdin (EOF) when done."""

    def __init__(self, *args: str, env: dict | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", *args], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
            env=clean_environment(env), cwd=ROOT)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def write(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def wait_for(self, kind: str, timeout: float) -> tuple[dict, list[dict]]:
        """The first JSON message of ``kind`` within ``timeout`` seconds, and every
        message seen until then; AssertionError if it never comes."""
        seen: list[dict] = []
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = json.loads(self.lines.get(timeout=left))
            except queue.Empty:
                break
            seen.append(message)
            if message.get("kind") == kind:
                return message, seen
        raise AssertionError(f"no {kind!r} within {timeout} s; saw {seen}")

    def close(self, timeout: float = 60) -> tuple[int, str]:
        """EOF on stdin; the exit code and stderr."""
        assert self.process.stdin is not None and self.process.stderr is not None
        self.process.stdin.close()
        code = self.process.wait(timeout=timeout)
        return code, self.process.stderr.read()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def run_plnbot(*args: str, stdin: str = "", env: dict | None = None, cwd: Path | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m bot ARGS`` in a process of its own, its output and exit code: forked
    from a process that already imported plnbot (``tests/support/forkserver.py``), or a
    fresh interpreter where that is not available or ``PLNBOT_REAL_SUBPROCESS=1``."""
    environment = clean_environment(env)
    command = [sys.executable, "-m", "bot", *args]
    server = fork_server()
    if server is None:
        return subprocess.run(command, input=stdin, capture_output=True, text=True,
                              env=environment, cwd=cwd or ROOT, timeout=timeout)
    forked = ForkedCommand(server, args, environment, cwd or ROOT)
    stdout, stderr = forked.communicate(stdin, timeout, command)
    if log := os.environ.get("PLNBOT_FORK_LOG"):  # how much processor time commands took
        with open(log, "a", encoding="utf-8") as stream:
            stream.write(f"{forked.cpu_seconds:.3f} {' '.join(args)[:80]}\n")
    return subprocess.CompletedProcess(command, forked.returncode, stdout, stderr)


class _ForkServer:
    """This test process's fork server (one per pytest process, started on first use)."""

    process: subprocess.Popen | None = None
    path = ""
    broken = False


def fork_server() -> str | None:
    """The fork server's socket path, starting it if needed; None to use a fresh
    interpreter (asked for, or the server could not start)."""
    if os.environ.get("PLNBOT_REAL_SUBPROCESS") == "1" or _ForkServer.broken:
        return None
    if _ForkServer.process is not None and _ForkServer.process.poll() is None:
        return _ForkServer.path
    folder = tempfile.mkdtemp(prefix="plnbot-fork-")
    path = os.path.join(folder, "socket")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.forkserver", path, str(os.getpid())],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, env=clean_environment(), cwd=ROOT)
    assert process.stdout is not None
    if process.stdout.readline().strip() != "ready":
        process.kill()
        _ForkServer.broken = True
        return None
    _ForkServer.process, _ForkServer.path = process, path
    atexit.register(_stop_fork_server, process, folder)
    return path


def _stop_fork_server(process: subprocess.Popen, folder: str) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=10)
    shutil.rmtree(folder, ignore_errors=True)


class ForkedCommand:
    """One command the fork server runs, with pipes for its three standard streams."""

    def __init__(self, server: str, args: tuple[str, ...], env: dict[str, str],
                 cwd: Path) -> None:
        stdin_read, self._stdin = os.pipe()
        self._stdout, stdout_write = os.pipe()
        self._stderr, stderr_write = os.pipe()
        self._control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._control.connect(server)
            request = json.dumps({"args": list(args), "env": env, "cwd": str(cwd)}) + "\n"
            socket.send_fds(self._control, [request.encode()],
                            [stdin_read, stdout_write, stderr_write])
        finally:
            for fd in (stdin_read, stdout_write, stderr_write):
                os.close(fd)
        self._answers = self._control.makefile("r", encoding="ascii")
        self.pid = int(self._answers.readline())
        self.returncode: int | None = None
        self.cpu_seconds = 0.0  # the command's processor time, as the fork server saw it

    def communicate(self, stdin: str, timeout: float,
                    command: list[str]) -> tuple[str, str]:
        """Write ``stdin``, read both outputs to their end and wait for the exit code, as
        ``subprocess.run(..., text=True)`` does (universal newlines); on timeout the
        command is killed and ``subprocess.TimeoutExpired`` raised."""
        encoding = locale.getpreferredencoding(False)
        outputs: dict[int, bytes] = {}

        def read(fd: int) -> None:
            with open(fd, "rb") as stream:
                outputs[fd] = stream.read()

        def write() -> None:
            try:
                with open(self._stdin, "wb") as stream:
                    stream.write(stdin.encode(encoding))
            except BrokenPipeError:
                pass

        threads = [threading.Thread(target=read, args=(self._stdout,), daemon=True),
                   threading.Thread(target=read, args=(self._stderr,), daemon=True),
                   threading.Thread(target=write, daemon=True)]
        for thread in threads:
            thread.start()
        self._control.settimeout(timeout)
        try:
            status, cpu = self._answers.readline().split()
            self.returncode, self.cpu_seconds = int(status), float(cpu)
        except (TimeoutError, ValueError):
            self.kill()
            raise subprocess.TimeoutExpired(command, timeout) from None
        finally:
            self._control.close()
        for thread in threads:
            thread.join(timeout=10)

        def text(fd: int) -> str:
            decoded = outputs.get(fd, b"").decode(encoding)
            return decoded.replace("\r\n", "\n").replace("\r", "\n")

        return text(self._stdout), text(self._stderr)

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def json_messages(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]
