"""A throwaway PostgreSQL server (Debian's postgresql package) on 127.0.0.1 for the tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _binary(name: str) -> str:
    for directory in BIN_DIRS:
        if (directory / name).exists():
            return str(directory / name)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root; CI runs as root, so drop to the postgres user there."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def postgres_server() -> Iterator[str]:
    base = Path(tempfile.mkdtemp(prefix="hotline-pg-"))
    data, sockets = base / "data", base / "run"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        shutil.chown(sockets, "postgres")
    port = _free_port()
    log = base / "server.log"
    subprocess.run(_as_postgres([_binary("initdb"), "-D", str(data), "-U", "hotline", "--auth=trust",
                                 "-E", "UTF8", "--locale=C.UTF-8"]), check=True, capture_output=True)
    server = subprocess.Popen(
        _as_postgres([_binary("postgres"), "-D", str(data), "-p", str(port), "-h", "127.0.0.1",
                      "-k", str(sockets), "-c", "fsync=off"]),
        stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )
    try:
        _wait_ready(port, server, log)
        subprocess.run([_binary("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "hotline", "tickets"],
                       check=True, capture_output=True)
        yield f"postgresql+psycopg://hotline@127.0.0.1:{port}/tickets"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(base, ignore_errors=True)


def _wait_ready(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"postgres exited: {log.read_text(errors='replace')}")
        ready = subprocess.run([_binary("pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True)
        if ready.returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"postgres did not accept connections on port {port}: {log.read_text(errors='replace')}")
