"""Run a real Miresga load balancer and real backends as subprocesses.

Used by the test suite, the plugin-author kit (miresga_core.testing) and benchmarks:
everything here starts real processes on loopback ports and stops them (SIGTERM, then
SIGKILL) when the context exits, so nothing outlives a test.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

__all__ = ["Backends", "LoadBalancer", "free_port", "wait_listening"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the kernel's choice)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_listening(host: str, port: int, timeout: float = 10.0,
                   proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {host}:{port} "
                               f"was listening")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def _stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _python_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "miresga_core.cli", *args]


@dataclass
class Backends:
    """Demo backends (miresga_core/demo.py) in one subprocess: ``names[i]`` on ``ports[i]``."""

    names: Sequence[str]
    host: str = "127.0.0.1"
    ports: list[int] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Backends:
        if not self.ports:
            self.ports = [free_port(self.host) for _ in self.names]
        cmd = _python_cmd("backend", "--host", self.host)
        for name, port in zip(self.names, self.ports, strict=True):
            cmd += ["--port", str(port), "--name", name]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        for port in self.ports:
            wait_listening(self.host, port, proc=self.proc)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            _stop(self.proc)

    def address(self, name: str) -> str:
        return f"{self.host}:{self.ports[list(self.names).index(name)]}"


class LoadBalancer:
    """``miresga serve -c <config>`` in a subprocess; ``config`` is TOML text.

    ``{port}`` in the text is replaced by a free port (``self.port``), ``{admin}`` by
    another (``self.admin_port``). The log is kept in ``self.log_path``.
    """

    def __init__(self, config: str, listen_host: str = "127.0.0.1",
                 extra_args: Sequence[str] = (), env: dict[str, str] | None = None) -> None:
        self.port = free_port(listen_host)
        self.admin_port = free_port("127.0.0.1")
        self.host = listen_host
        self.text = config.replace("{port}", str(self.port)).replace("{admin}",
                                                                     str(self.admin_port))
        self.extra_args = extra_args
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="miresga-lb-")
        self.config_path = os.path.join(self._dir.name, "miresga.toml")
        self.log_path = os.path.join(self._dir.name, "lb.log")

    def __enter__(self) -> LoadBalancer:
        with open(self.config_path, "w") as fh:
            fh.write(self.text)
        env = dict(os.environ, **(self.env or {}))
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                _python_cmd("-v", "serve", "-c", self.config_path, *self.extra_args),
                stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_listening(self.host, self.port, proc=self.proc)
        except Exception:
            self.__exit__()
            raise RuntimeError(f"load balancer did not start:\n{self.log()}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            _stop(self.proc)
        self._dir.cleanup()

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def log(self) -> str:
        with contextlib.suppress(OSError), open(self.log_path, errors="replace") as fh:
            return fh.read()
        return ""

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@contextlib.contextmanager
def serving(config: str, backend_names: Sequence[str]) -> Iterator[tuple[LoadBalancer, Backends]]:
    """Backends named ``backend_names`` and a load balancer whose config may refer to
    ``{addr:<name>}`` for each backend's address."""
    with Backends(backend_names) as backends:
        text = config
        for name in backend_names:
            text = text.replace("{addr:" + name + "}", backends.address(name))
        with LoadBalancer(text) as lb:
            yield lb, backends
