"""End-to-end fixtures: this checkout installed with pip into a scratch directory, the load
balancer started from it as a subprocess, real backends as subprocesses, loopback only.

Installing (``pip install --no-deps --no-build-isolation --target``) rather than importing the
tree makes the subprocess find the plugins exactly as a user's install does: through the
``miresga`` entry points of this checkout's pyproject.toml and of plugins/grpc's own one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    for project in (ROOT, ROOT / "plugins" / "grpc"):
        before = {p.name for p in project.iterdir()}
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--no-build-isolation", "--disable-pip-version-check", "--target",
                        str(target), str(project)], check=True, timeout=180,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for leftover in project.iterdir():  # the in-tree build's by-products
            if leftover.name not in before and (leftover.name == "build"
                                                or leftover.name.endswith(".egg-info")):
                shutil.rmtree(leftover)
    return target


def wait_port(port: int, timeout: float = 15.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port}")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Procs:
    """Processes a test started; all stopped at the end whatever happens."""

    def __init__(self, site: Path, tmp: Path) -> None:
        self.site, self.tmp = site, tmp
        self.procs: list[subprocess.Popen] = []

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.site), "PYTHONUNBUFFERED": "1"}

    def start(self, cmd: list[str], port: int, log: str) -> subprocess.Popen:
        out = open(self.tmp / log, "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(cmd, env=self.env(), cwd=self.tmp, stdout=out,
                                stderr=subprocess.STDOUT)
        out.close()
        self.procs.append(proc)
        wait_port(port, proc=proc)
        return proc

    def lb(self, config: str, port: int, name: str = "lb") -> subprocess.Popen:
        path = self.tmp / f"{name}.toml"
        path.write_text(config)
        return self.start([sys.executable, "-m", "miresga_core.cli", "serve", "-c", str(path)],
                          port, f"{name}.log")

    def h2_backend(self, port: int, name: str) -> subprocess.Popen:
        return self.start([sys.executable, str(HERE / "h2backend.py"), "--port", str(port),
                           "--name", name], port, f"{name}.log")

    def http1_backend(self, port: int, name: str) -> subprocess.Popen:
        return self.start([sys.executable, "-m", "miresga_core.cli", "backend", "--port",
                           str(port), "--name", name], port, f"{name}.log")

    def wait(self, port: int) -> None:
        wait_port(port)

    def log(self, name: str) -> str:
        with contextlib.suppress(OSError):
            return (self.tmp / f"{name}.log").read_text(errors="replace")
        return ""

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)


@pytest.fixture
def procs(site: Path, tmp_path: Path) -> Iterator[Procs]:
    p = Procs(site, tmp_path)
    try:
        yield p
    finally:
        p.close()
