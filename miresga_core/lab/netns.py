"""Run a function inside a named network namespace (in a helper thread: setns(2) moves only
the calling thread, so the caller's own namespace never changes)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["NETNS_DIR", "in_netns", "netns_exists", "run_in_netns"]

NETNS_DIR = "/run/netns"
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

T = TypeVar("T")


def netns_exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_DIR, name))


def in_netns(name: str, fn: Callable[..., T], *args: Any, timeout: float = 120.0) -> T:
    """Call ``fn(*args)`` in a thread that has joined namespace ``name``; return its result
    or re-raise its exception. Sockets created by ``fn`` stay in that namespace."""
    result: list[Any] = []
    error: list[BaseException] = []

    def body() -> None:
        try:
            fd = os.open(os.path.join(NETNS_DIR, name), os.O_RDONLY)
        except FileNotFoundError:
            error.append(FileNotFoundError(f"network namespace {name!r} does not exist"))
            return
        try:
            if _libc.setns(fd, _CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                error.append(OSError(err, f"setns({name}): {os.strerror(err)}"))
                return
        finally:
            os.close(fd)
        try:
            result.append(fn(*args))
        except BaseException as exc:  # handed to the caller
            error.append(exc)

    t = threading.Thread(target=body, name=f"netns-{name}", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TimeoutError(f"call in namespace {name} did not finish in {timeout} s")
    if error:
        raise error[0]
    return result[0]


def run_in_netns(name: str, argv: list[str], timeout: float = 30.0) -> str:
    """Run a command in a namespace (``ip netns exec``); a failure raises with its stderr."""
    proc = subprocess.run(["ip", "netns", "exec", name, *argv], capture_output=True,
                          text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} in {name}: {proc.stderr.strip()}")
    return proc.stdout
