"""BPF objects, programs and maps over the system libbpf (see the package docstring)."""

from __future__ import annotations

import ctypes
import errno
import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import _libbpf as L
from ._libbpf import BpfError, check, check_ptr

__all__ = [
    "ANY", "EXIST", "NOEXIST", "BpfObject", "Map", "Program", "TestRun", "pinned_id",
    "possible_cpus",
]

# bpf_map_update_elem flags (linux/bpf.h)
ANY, NOEXIST, EXIST = 0, 1, 2

# map types whose user-space values hold one slot per possible CPU (linux/bpf.h enum)
_PERCPU_TYPES = {5, 6, 10}  # PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH

_LOG_SIZE = 1 << 20  # tail of a verifier log; libbpf truncates longer ones


@functools.cache
def possible_cpus() -> int:
    """Number of possible CPUs (``/sys/devices/system/cpu/possible``, e.g. ``0-3``)."""
    text = Path("/sys/devices/system/cpu/possible").read_text().strip()
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count


def pinned_id(path: str | os.PathLike[str]) -> int:
    """Kernel id of the program or map pinned at ``path`` (as ``bpftool`` shows it)."""
    fd = check(L.lib.bpf_obj_get(os.fsencode(path)), f"bpf_obj_get({path})")
    try:
        info = (ctypes.c_uint32 * 2)()  # bpf_prog_info and bpf_map_info start: type, id
        size = ctypes.c_uint32(ctypes.sizeof(info))
        check(L.lib.bpf_obj_get_info_by_fd(fd, info, ctypes.byref(size)),
              f"bpf_obj_get_info_by_fd({path})")
        return int(info[1])
    finally:
        os.close(fd)


@dataclass(frozen=True)
class TestRun:
    """Result of one BPF_PROG_TEST_RUN: the program's return value and the packet after it."""

    __test__ = False  # not a pytest class

    retval: int
    data: bytes
    duration_ns: int


class Map:
    """A BPF map by file descriptor; keys and values are ``bytes`` of the map's exact sizes.

    For per-CPU maps a value is the concatenation of one 8-byte-aligned slot per possible CPU
    (that is what the kernel exchanges); :meth:`lookup_percpu` splits it.
    """

    def __init__(self, fd: int, name: str, map_type: int, key_size: int, value_size: int,
                 max_entries: int, *, owned: bool) -> None:
        self.fd = fd
        self.name = name
        self.type = map_type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self._owned = owned  # True: we close the fd; False: the BpfObject does
        slot = (value_size + 7) & ~7
        self.percpu = map_type in _PERCPU_TYPES
        self.user_value_size = slot * possible_cpus() if self.percpu else value_size

    def __repr__(self) -> str:
        return (f"Map({self.name!r}, fd={self.fd}, type={self.type}, key={self.key_size}, "
                f"value={self.value_size}, max={self.max_entries})")

    @classmethod
    def from_pinned(cls, path: str | os.PathLike[str]) -> Map:
        """Open a map pinned in bpffs; the returned map owns its fd (call :meth:`close`)."""
        fd = check(L.lib.bpf_obj_get(os.fsencode(path)), f"bpf_obj_get({path})")
        info = L.MapInfo()
        size = ctypes.c_uint32(ctypes.sizeof(info))
        try:
            check(L.lib.bpf_obj_get_info_by_fd(fd, ctypes.byref(info), ctypes.byref(size)),
                  f"bpf_obj_get_info_by_fd({path})")
        except BpfError:
            os.close(fd)
            raise
        return cls(fd, info.name.decode(), info.type, info.key_size, info.value_size,
                   info.max_entries, owned=True)

    def close(self) -> None:
        if self._owned and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Map:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _key(self, key: bytes) -> ctypes.Array[ctypes.c_char]:
        if len(key) != self.key_size:
            raise ValueError(f"map {self.name}: key is {len(key)} bytes, want {self.key_size}")
        return ctypes.create_string_buffer(bytes(key), self.key_size)

    def lookup(self, key: bytes) -> bytes | None:
        """The value stored under ``key``, or None when there is none."""
        kbuf = self._key(key)
        vbuf = ctypes.create_string_buffer(self.user_value_size)
        ret = L.lib.bpf_map_lookup_elem(self.fd, kbuf, vbuf)
        if ret == -errno.ENOENT:
            return None
        check(ret, f"lookup in map {self.name}")
        return vbuf.raw

    def lookup_percpu(self, key: bytes) -> list[bytes] | None:
        """Per-CPU map: the value of each possible CPU (each ``value_size`` bytes)."""
        raw = self.lookup(key)
        if raw is None:
            return None
        slot = (self.value_size + 7) & ~7
        return [raw[i:i + self.value_size] for i in range(0, len(raw), slot)]

    def update(self, key: bytes, value: bytes, flags: int = ANY) -> None:
        """Store ``value`` under ``key`` (flags: ANY, NOEXIST or EXIST)."""
        if len(value) != self.user_value_size:
            raise ValueError(f"map {self.name}: value is {len(value)} bytes, "
                             f"want {self.user_value_size}")
        vbuf = ctypes.create_string_buffer(bytes(value), self.user_value_size)
        check(L.lib.bpf_map_update_elem(self.fd, self._key(key), vbuf, flags),
              f"update in map {self.name}")

    def delete(self, key: bytes) -> bool:
        """Remove ``key``; False when it was not there."""
        ret = L.lib.bpf_map_delete_elem(self.fd, self._key(key))
        if ret == -errno.ENOENT:
            return False
        check(ret, f"delete in map {self.name}")
        return True

    def keys(self, limit: int | None = None) -> Iterator[bytes]:
        """Iterate keys (at most ``limit``; default ``max_entries``, so it always ends).

        Keys deleted while iterating may make the kernel restart from the first key; the limit
        keeps that finite.
        """
        bound = self.max_entries if limit is None else limit
        prev: ctypes.Array[ctypes.c_char] | None = None
        nxt = ctypes.create_string_buffer(self.key_size)
        for _ in range(bound):
            ret = L.lib.bpf_map_get_next_key(self.fd, prev, nxt)
            if ret == -errno.ENOENT:
                return
            check(ret, f"get_next_key in map {self.name}")
            key = nxt.raw
            yield key
            prev = ctypes.create_string_buffer(key, self.key_size)

    def items(self, limit: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Iterate (key, value) pairs; entries vanishing in between are skipped."""
        for key in list(self.keys(limit)):
            value = self.lookup(key)
            if value is not None:
                yield key, value

    def clear(self) -> int:
        """Delete every key (not for arrays); returns how many were deleted."""
        return sum(self.delete(k) for k in list(self.keys()))

    def pin(self, path: str | os.PathLike[str]) -> None:
        """Pin this map at ``path`` in bpffs (the directory must exist)."""
        check(L.lib.bpf_obj_pin(self.fd, os.fsencode(path)), f"pin map {self.name} at {path}")


class Program:
    """A loaded BPF program of a :class:`BpfObject`."""

    def __init__(self, ptr: int, obj: BpfObject) -> None:
        self._ptr = ptr
        self._obj = obj  # keeps the object (and so the fd) alive
        self.name = L.lib.bpf_program__name(ptr).decode()

    def __repr__(self) -> str:
        return f"Program({self.name!r}, fd={self.fd})"

    @property
    def fd(self) -> int:
        """The program fd, for attaching (valid while the object is open)."""
        return check(L.lib.bpf_program__fd(self._ptr), f"program {self.name} is not loaded")

    @property
    def type(self) -> int:
        """``enum bpf_prog_type`` (XDP = 6, SCHED_CLS = 3)."""
        return int(L.lib.bpf_program__type(self._ptr))

    def pin(self, path: str | os.PathLike[str]) -> None:
        check(L.lib.bpf_obj_pin(self.fd, os.fsencode(path)), f"pin program {self.name}")

    def test_run(self, data: bytes, *, repeat: int = 1, out_size: int | None = None,
                 ctx: bytes | None = None) -> TestRun:
        """Run the program once (or ``repeat`` times) on ``data`` with BPF_PROG_TEST_RUN.

        ``data`` starts at the Ethernet header for XDP and TC programs. The output buffer
        is ``out_size`` bytes (default: input + 256, room for programs that grow packets);
        the kernel fails with ENOSPC if the output does not fit.
        """
        size_out = out_size if out_size is not None else len(data) + 256
        inbuf = ctypes.create_string_buffer(bytes(data), len(data))
        outbuf = ctypes.create_string_buffer(size_out)
        opts = L.TestRunOpts(sz=ctypes.sizeof(L.TestRunOpts))
        opts.data_in = ctypes.cast(inbuf, ctypes.c_void_p)
        opts.data_size_in = len(data)
        opts.data_out = ctypes.cast(outbuf, ctypes.c_void_p)
        opts.data_size_out = size_out
        opts.repeat = repeat
        ctxbuf = None
        if ctx is not None:
            ctxbuf = ctypes.create_string_buffer(bytes(ctx), len(ctx))
            opts.ctx_in = ctypes.cast(ctxbuf, ctypes.c_void_p)
            opts.ctx_size_in = len(ctx)
        check(L.lib.bpf_prog_test_run_opts(self.fd, ctypes.byref(opts)),
              f"BPF_PROG_TEST_RUN of {self.name}")
        return TestRun(int(opts.retval), outbuf.raw[:opts.data_size_out], int(opts.duration))


class BpfObject:
    """An ELF ``.bpf.o`` opened (and usually loaded) through libbpf.

    ``BpfObject.load_file(path)`` opens and loads in one go; use ``open`` + :meth:`reuse_map` +
    :meth:`load` to share maps already pinned by an earlier load. Close it (or use ``with``)
    to release every program and map fd it holds; attachments and pins keep their own
    references and survive the close.
    """

    def __init__(self, ptr: int, path: str, log: ctypes.Array[ctypes.c_char]) -> None:
        self._ptr: int | None = ptr
        self.path = path
        self.loaded = False
        self._log = log  # libbpf writes the verifier log of a failed load here

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> BpfObject:
        spath = os.fspath(path)
        if not os.path.exists(spath):
            raise BpfError(errno.ENOENT, f"open BPF object {spath}", "no such file; build it first")
        log = ctypes.create_string_buffer(_LOG_SIZE)
        opts = L.ObjectOpenOpts(sz=ctypes.sizeof(L.ObjectOpenOpts))
        opts.kernel_log_buf = ctypes.cast(log, ctypes.c_void_p)
        opts.kernel_log_size = _LOG_SIZE
        ptr = check_ptr(L.lib.bpf_object__open_file(os.fsencode(spath), ctypes.byref(opts)),
                        f"bpf_object__open_file({spath})")
        return cls(ptr, spath, log)

    @classmethod
    def load_file(cls, path: str | os.PathLike[str]) -> BpfObject:
        obj = cls.open(path)
        try:
            obj.load()
        except BaseException:
            obj.close()
            raise
        return obj

    def _handle(self) -> int:
        if self._ptr is None:
            raise ValueError(f"BPF object {self.path} is closed")
        return self._ptr

    def load(self) -> None:
        """Load every program and create every map; a refusal carries the verifier log tail.

        With a log buffer set at open time and log level 0, libbpf loads without a log and
        retries a failed program with level 1 into our buffer (libbpf.h, open opts).
        """
        ret = L.lib.bpf_object__load(self._handle())
        if ret < 0:
            text = self._log.value.decode(errors="replace").strip()
            lines = text.splitlines()
            tail = "\n".join(lines[-40:]) if lines else "(no verifier log)"
            check(ret, f"bpf_object__load({self.path})", "verifier log (tail):\n" + tail)
        self.loaded = True

    def reuse_map(self, name: str, pinned_path: str | os.PathLike[str]) -> None:
        """Before :meth:`load`: use the map pinned at ``pinned_path`` instead of a new one."""
        ptr = check_ptr(L.lib.bpf_object__find_map_by_name(self._handle(), name.encode()),
                        f"no map {name!r} in {self.path}")
        fd = check(L.lib.bpf_obj_get(os.fsencode(pinned_path)), f"bpf_obj_get({pinned_path})")
        try:
            check(L.lib.bpf_map__reuse_fd(ptr, fd), f"reuse pinned map {pinned_path}")
        finally:
            os.close(fd)  # libbpf dup()s it

    def set_max_entries(self, name: str, max_entries: int) -> None:
        """Before :meth:`load`: resize a map."""
        ptr = check_ptr(L.lib.bpf_object__find_map_by_name(self._handle(), name.encode()),
                        f"no map {name!r} in {self.path}")
        check(L.lib.bpf_map__set_max_entries(ptr, max_entries), f"resize map {name}")

    def program(self, name: str) -> Program:
        """The program whose C function is ``name``."""
        ptr = L.lib.bpf_object__find_program_by_name(self._handle(), name.encode())
        if not ptr:
            raise KeyError(f"no program {name!r} in {self.path}; has {self.program_names()}")
        return Program(ptr, self)

    def program_names(self) -> list[str]:
        names, ptr = [], None
        for _ in range(1024):
            ptr = L.lib.bpf_object__next_program(self._handle(), ptr)
            if not ptr:
                break
            names.append(L.lib.bpf_program__name(ptr).decode())
        return names

    def map(self, name: str) -> Map:
        """The map declared as ``name`` (its fd belongs to this object)."""
        ptr = L.lib.bpf_object__find_map_by_name(self._handle(), name.encode())
        if not ptr:
            raise KeyError(f"no map {name!r} in {self.path}; has {self.map_names()}")
        fd = L.lib.bpf_map__fd(ptr)
        if fd < 0:
            raise BpfError(errno.EBADF, f"map {name} has no fd", "load the object first")
        return Map(fd, name, L.lib.bpf_map__type(ptr), L.lib.bpf_map__key_size(ptr),
                   L.lib.bpf_map__value_size(ptr), L.lib.bpf_map__max_entries(ptr), owned=False)

    def map_names(self) -> list[str]:
        names, ptr = [], None
        for _ in range(1024):
            ptr = L.lib.bpf_object__next_map(self._handle(), ptr)
            if not ptr:
                break
            names.append(L.lib.bpf_map__name(ptr).decode())
        return names

    def close(self) -> None:
        if self._ptr is not None:
            L.lib.bpf_object__close(self._ptr)
            self._ptr = None

    def __enter__(self) -> BpfObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # last resort; close() explicitly
        self.close()
