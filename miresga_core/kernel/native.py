"""The native engine of the ``kernel`` data plane: C worker processes (``miresga-kw``).

With ``[dataplane.kernel] engine = "native"`` the Python master stays the control plane
(config, health checks, admin API, supervision) and the per-request work runs in
``native/kernel`` (docs/native-kernel.md). This module is the Python side of that split:

* ``check_native(config)`` refuses what the native worker does not serve (non-HTTP/1
  listeners, listeners without a compiled rule program), naming file and line;
* ``build_worker()`` builds the binary on demand with make (a clear error naming what to
  install when there is no compiler);
* ``write_plan(config, registry, path)`` writes what the workers serve: listeners with their
  compiled rule programs, pools and backends, timeouts. The format, one record per line,
  fields separated by one space, text percent-encoded (kw_plan.c reads it)::

      pool <name> <passive 0|1> <cooldown ms>
      backend <host> <port> <weight> <label> <address text>     (of the pool above)
      listener <name> <host> <port> <v6 0|1> <max_head> <retries> <forwarded_for 0|1>
               <head ms> <idle ms> <connect ms> <response ms> <drain ms>
               <n> <plan pool index of program pool 0..n-1> <program hex>
      splice_min <bytes>
      listen_fd <listener name> <fd>      (the master's listening socket, inherited)

* ``NativeWorker`` runs one worker with its control socket inherited; it quacks like the
  ``multiprocessing.Process`` the master supervises (``is_alive``, ``pid``, ``join``...).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..bpf.build import REPO_ROOT, BuildError, make_target
from ..bytecode.compiler import CompileError, compile_listener
from ..bytecode.program import decode, encode
from ..config import Config
from ..errors import ConfigError
from ..tomlpos import KeyLines

__all__ = ["KW_DIR", "NativeWorker", "build_target", "build_worker", "check_native",
           "listen_sockets", "write_plan"]

KW_DIR = REPO_ROOT / "native" / "kernel"
# Response bodies at least this long move with splice(2); MIRESGA_KW_SPLICE_MIN overrides it
# (a measuring knob: a huge value relays everything through user space).
SPLICE_MIN = 64 * 1024
MAX_RETRIES = 15  # the worker tracks at most 16 tried backends per request


def _line(config: Config, path: tuple[str | int, ...]) -> int | None:
    try:
        with open(config.file, encoding="utf-8") as fh:
            return KeyLines(fh.read()).line_of(path)
    except OSError:
        return None


def check_native(config: Config, registry: Any) -> dict[str, bytes]:
    """The encoded rule program of every listener; refuse what the native engine cannot
    serve (``ConfigError`` naming the file, line and listener)."""
    programs = {}
    for i, listener in enumerate(config.listeners):
        if listener.protocol != "http1":
            raise ConfigError(
                f"engine = \"native\" serves HTTP/1 listeners only (this one is "
                f"{listener.protocol!r}): use engine = \"python\" or another data plane",
                file=config.file, line=_line(config, ("listeners", i, "protocol")),
                key=f"listeners[{i}].protocol")
        try:
            program = compile_listener(config, listener, registry)
        except (CompileError, NotImplementedError) as exc:
            raise ConfigError(f"engine = \"native\" needs the compiled rule program: {exc}",
                              file=config.file, line=_line(config, ("listeners", i)),
                              key=f"listeners[{i}]") from None
        programs[listener.name] = encode(program)
        for pool in _uncompiled_pools(config, registry, listener):
            raise ConfigError(
                f"engine = \"native\" needs a compiled form of the pool's policy "
                f"({config.pools[pool].policy!r} with these options has none, e.g. a hash "
                f"on a cookie): use engine = \"python\" or another policy",
                file=config.file, line=_line(config, ("pools", pool, "policy"))
                or _line(config, ("pools", pool)), key=f"pools.{pool}.policy")
    return programs


def _uncompiled_pools(config: Config, registry: Any, listener: Any) -> list[str]:
    """Pools of ``listener`` whose policy leaves every pick to Python (``compile`` gives
    None): the native worker has no Python to ask. A pool with no weight at all is fine
    (nothing to pick: 503)."""
    from ..bytecode.builder import ProgramBuilder
    from ..bytecode.compiler import _policy_fields, make_parser

    parser = make_parser(registry.parsers[listener.protocol], listener)
    fields = sorted({c.field for r in listener.routes for c in r.match}
                    | _policy_fields(config, registry, listener))
    b = ProgramBuilder()
    refs = parser.compile(b, fields)
    out = []
    for name in sorted({r.pool for r in listener.routes} | ({listener.default_pool} - {""})):
        pool = config.pools[name]
        backends = pool.backend_objects()
        if not any(backend.weight for backend in backends):
            continue
        policy = registry.policies[pool.policy](backends, pool.options)
        wanted = getattr(policy, "request_fields", None)
        if (policy.compile(b, refs) if wanted is not None else policy.compile(b)) is None:
            out.append(name)
    return out


def build_worker(asan: bool = False, timeout: float = 300.0) -> Path:
    """Build ``native/kernel/build/miresga-kw`` (or the ASan+UBSan variant) with make.

    ``MIRESGA_KW_BINARY`` names a binary to use instead (tests run the sanitizer build
    that way)."""
    override = os.environ.get("MIRESGA_KW_BINARY")
    if override:
        if not os.access(override, os.X_OK):
            raise BuildError(f"MIRESGA_KW_BINARY={override} is not an executable")
        return Path(override)
    return build_target("miresga-kw-asan" if asan else "miresga-kw", timeout)


def build_target(name: str, timeout: float = 300.0) -> Path:
    """``make -C native/kernel build/<name>`` (serialised by a lock); returns the path."""
    if not (KW_DIR / "Makefile").is_file():
        raise BuildError(f"the native worker's sources are not here ({KW_DIR}): it is built "
                         "from a source checkout of Miresga (pip installs carry the Python "
                         "engine only)")
    return make_target(KW_DIR, Path("build") / name, ("make", "cc"),
                       "the native kernel worker is built from source (Debian: apt install "
                       "gcc make)", timeout)


def _q(text: str) -> str:
    return quote(text, safe="") or "%00"  # never an empty field (%00 reads back as "")


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def listen_sockets(config: Config) -> dict[str, socket.socket]:
    """One listening socket per listener, opened by the master and inherited by every
    worker: a single accept queue that the workers share (EPOLLEXCLUSIVE), so a connection
    goes to a worker that is free; with SO_REUSEPORT a hash of the 4-tuple picks the worker
    and can leave one with twice the other's connections. A restarted worker takes the
    same queue over, so nothing queued is lost when one dies."""
    socks: dict[str, socket.socket] = {}
    try:
        for listener in config.listeners:
            addr = listener.listen
            family = socket.AF_INET6 if addr.family_v6 else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            socks[listener.name] = sock
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # accepted inherit it
            try:
                sock.bind((addr.host, addr.port))
            except OSError as exc:
                raise ConfigError(f"listener {listener.name}: cannot bind {addr}: "
                                  f"{exc.strerror}", file=config.file,
                                  line=_line(config, ("listeners", config.listeners.index(
                                      listener), "listen"))) from None
            sock.listen(4096)
            sock.set_inheritable(True)
    except BaseException:
        for sock in socks.values():
            sock.close()
        raise
    return socks


def write_plan(config: Config, registry: Any, path: str | os.PathLike[str],
               programs: dict[str, bytes] | None = None,
               listen_fds: dict[str, int] | None = None) -> None:
    """Write the workers' plan (format: module docstring)."""
    if programs is None:
        programs = check_native(config, registry)
    names = list(config.pools)
    lines = [f"splice_min {int(os.environ.get('MIRESGA_KW_SPLICE_MIN', SPLICE_MIN))}"]
    for name in names:
        pool = config.pools[name]
        lines.append(f"pool {_q(name)} {int(pool.health.passive)} {_ms(pool.health.cooldown)}")
        for backend in pool.backend_objects():
            lines.append(f"backend {_q(backend.address.host)} {backend.address.port} "
                         f"{backend.weight} {_q(backend.label)} {_q(str(backend.address))}")
    for listener in config.listeners:
        data = programs[listener.name]
        program = decode(data)
        t = listener.timeouts
        pool_index = " ".join(str(names.index(p)) for p in program.pools)
        lines.append(
            f"listener {_q(listener.name)} {_q(listener.listen.host)} {listener.listen.port} "
            f"{int(listener.listen.family_v6)} {listener.max_head} "
            f"{min(listener.retries, MAX_RETRIES)} {int(listener.forwarded_for)} "
            f"{_ms(t.head)} {_ms(t.idle)} {_ms(t.connect)} {_ms(t.response)} {_ms(t.drain)} "
            f"{len(program.pools)} {pool_index}{' ' if pool_index else ''}{data.hex()}")
    for name, fd in (listen_fds or {}).items():
        lines.append(f"listen_fd {_q(name)} {fd}")
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "w", encoding="ascii") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


class NativeWorker:
    """One ``miresga-kw`` process; the interface the master uses of a Process."""

    def __init__(self, binary: Path, plan: str, index: int, control: socket.socket,
                 listen_fds: tuple[int, ...] = ()) -> None:
        self.binary, self.plan, self.index, self.control = binary, plan, index, control
        self.listen_fds = listen_fds  # the master's listening sockets the plan names
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        fd = self.control.fileno()
        self.proc = subprocess.Popen(
            [str(self.binary), "--plan", self.plan, "--worker", str(self.index),
             "--control-fd", str(fd)], pass_fds=(fd, *self.listen_fds),
            stdin=subprocess.DEVNULL, preexec_fn=_ignore_sigint)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def exitcode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def is_alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def join(self, timeout: float | None = None) -> None:
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the master decides when workers stop
