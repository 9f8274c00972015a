"""``plnbot`` commands in processes of their own, forked from one that already imported
plnbot: each command is still a separate process with its own arguments, environment,
working folder, standard streams and exit code, but starts in a few milliseconds instead
of the ~0.6 s a fresh interpreter spends importing SQLAlchemy, pydantic and the rest.

The tests run ~200 commands this way (``tests/support/cli.py``); a fresh interpreter for
each was a third of ``make test``'s processor time.

Protocol, over a Unix socket: the test sends one JSON line ``{"args", "env", "cwd"}`` with
the command's stdin, stdout and stderr as passed file descriptors; the server forks a
manager, which forks the command, sends its pid as one line, waits for it and sends its
exit status (negative: killed by that signal) as a second line.

Safe because nothing in ``bot/``, ``handlers/`` or ``storage/`` reads the environment or
the working folder at import time (``Settings`` are read when a command starts), the
server starts no thread before forking, and ``random`` reseeds itself in every fork.
``PLNBOT_REAL_SUBPROCESS=1`` runs every command in a fresh interpreter instead.
"""

from __future__ import annotations

import array
import json
import os
import signal
import socket
import sys

PACKAGES = ("bot", "handlers", "storage")
ALSO = ("alembic.command", "alembic.runtime.migration", "sqlalchemy.dialects.postgresql",
        "psycopg", "matplotlib.figure", "matplotlib.backends.backend_agg")


def preload() -> None:
    """Import every module of plnbot (and what commands import lazily), then move them
    out of the garbage collector's sight, so that neither a command's imports nor its
    start-up ``gc.collect()`` pay for them again."""
    import gc
    import importlib
    import pkgutil

    for package in PACKAGES:
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, f"{package}."):
            if info.name.endswith("__main__"):
                continue
            try:
                importlib.import_module(info.name)
            except Exception:  # noqa: BLE001 - a command importing it says what is wrong
                pass
    for name in ALSO:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    gc.collect()
    gc.freeze()


def serve(path: str, parent: int) -> None:
    """Import plnbot, then fork a command for each request until the parent goes."""
    preload()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(64)
    listener.settimeout(1.0)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # managers are reaped by the kernel
    print("ready", flush=True)
    while os.getppid() == parent:
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        if os.fork() == 0:
            listener.close()
            _manage(connection)
        connection.close()
    os._exit(0)


def _manage(connection: socket.socket) -> None:
    """In the manager: receive the request, fork the command, report its pid and status."""
    status = 1
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        request, fds = _receive(connection)
        pid = os.fork()
        if pid == 0:
            connection.close()
            _run_command(request, fds)
        for fd in fds:
            os.close(fd)
        connection.sendall(f"{pid}\n".encode())
        _, wait_status, usage = os.wait4(pid, 0)
        status = os.waitstatus_to_exitcode(wait_status)
        cpu = usage.ru_utime + usage.ru_stime
        connection.sendall(f"{status} {cpu:.3f}\n".encode())
    finally:
        os._exit(0)


def _receive(connection: socket.socket) -> tuple[dict, list[int]]:
    fds = array.array("i")
    data = b""
    while not data.endswith(b"\n"):
        message, ancillary, _, _ = connection.recvmsg(65536, socket.CMSG_LEN(3 * fds.itemsize))
        if not message:
            raise ConnectionError("the test closed the connection")
        data += message
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[:len(payload) - len(payload) % fds.itemsize])
    return json.loads(data), list(fds)


def _run_command(request: dict, fds: list[int]) -> None:
    """In the command's process: its streams, environment, folder and arguments, then
    ``python -m bot`` as a fresh interpreter would run it."""
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        sys.argv = ["plnbot", *request["args"]]
        from bot.cli import main

        try:
            main(prog_name="python -m bot")
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            if stop.code is not None and not isinstance(stop.code, int):
                print(stop.code, file=sys.stderr)
        except BaseException:  # noqa: BLE001 - as the interpreter would: traceback, exit 1
            import traceback

            traceback.print_exc()
            code = 1
    finally:
        _exit_as_the_interpreter_does(code)


def _exit_as_the_interpreter_does(code: int) -> None:
    """What a fresh interpreter does on its way out (its exit functions, logging's
    handlers flushed and closed, the standard streams flushed), then exit at once."""
    import atexit
    import logging

    try:
        atexit._run_exitfuncs()
        logging.shutdown()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
