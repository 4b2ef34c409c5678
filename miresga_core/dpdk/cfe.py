"""ctypes binding of the C front-end machine (native/dpdk/fe, ``libmfe.so``).

``CFrontend`` has the reference machine's interface (``receive``, ``expire``,
``next_deadline``, ``counters``), returns the same action objects, and so runs the same
traces (``frontend.trace.replay``). It is how the tests hold the C machine to the Python
one, and how the C code runs under AddressSanitizer (``asan=True``: the library is built
with ASan; the Python process must have libasan preloaded, see tests/dpdk).
"""

from __future__ import annotations

import ctypes
import ipaddress
import struct
from collections import Counter
from collections.abc import Mapping

from ..api import Address, OffloadMode
from ..bytecode.program import encode
from ..cookie import CookieSecrets
from ..frontend.machine import COUNTER_NAMES, FrontendConfig
from ..frontend.state import Action, Offload, Transmit, Unoffload
from . import build
from .decider import ProgramDecider

__all__ = ["CFrontend", "decode_actions", "encode_actions", "steer_client"]

_MODES = (OffloadMode.NONE, OffloadMode.SPLICE, OffloadMode.PIN)
_c_i64, _c_u8p, _c_sz = ctypes.c_int64, ctypes.c_char_p, ctypes.c_size_t


class _Params(ctypes.Structure):
    _fields_ = [(n, ctypes.c_int64) for n in (
        "max_head", "syn_rto_ns", "syn_retries", "idle_timeout_ns",
        "offloaded_idle_timeout_ns", "close_grace_ns", "pool_affinity")]


_LIBS: dict[bool, ctypes.CDLL] = {}


def _lib(asan: bool) -> ctypes.CDLL:
    if asan not in _LIBS:
        lib = ctypes.CDLL(str(build.library(asan)))
        lib.mfe_new.restype = ctypes.c_void_p
        lib.mfe_free.argtypes = [ctypes.c_void_p]
        lib.mfe_set_params.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Params)]
        lib.mfe_set_cookie_keys.argtypes = [ctypes.c_void_p, _c_u8p, _c_u8p]
        lib.mfe_set_agent_key.argtypes = [ctypes.c_void_p, ctypes.c_int, _c_u8p, ctypes.c_int]
        lib.mfe_add_vip.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint16,
                                    ctypes.c_int, ctypes.c_int, _c_u8p, _c_sz, _c_u8p, _c_sz]
        lib.mfe_add_backend.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint16,
                                        ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint16]
        lib.mfe_receive.argtypes = [ctypes.c_void_p, _c_u8p, _c_sz, _c_i64]
        lib.mfe_expire.argtypes = [ctypes.c_void_p, _c_i64]
        lib.mfe_out.argtypes = [ctypes.c_void_p, ctypes.POINTER(_c_sz)]
        lib.mfe_out.restype = ctypes.c_void_p
        lib.mfe_next_deadline.argtypes = [ctypes.c_void_p]
        lib.mfe_next_deadline.restype = _c_i64
        lib.mfe_counter.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.mfe_counter.restype = ctypes.c_uint64
        for f in ("mfe_nconns", "mfe_nlegs"):
            getattr(lib, f).argtypes = [ctypes.c_void_p]
            getattr(lib, f).restype = ctypes.c_uint32
        lib.mfe_oldest_ns.argtypes = [ctypes.c_void_p]
        lib.mfe_oldest_ns.restype = _c_i64
        lib.mfe_oom.argtypes = [ctypes.c_void_p]
        lib.mfe_oom.restype = ctypes.c_uint64
        lib.fe_steer_client.argtypes = [ctypes.c_uint32, ctypes.c_uint16, ctypes.c_uint]
        lib.fe_steer_client.restype = ctypes.c_uint
        lib.mfe_steer.argtypes = [ctypes.c_void_p, _c_u8p, _c_sz, ctypes.c_uint]
        lib.mfe_steer.restype = ctypes.c_int
        _LIBS[asan] = lib
    return _LIBS[asan]


def steer_client(client: Address, shards: int) -> int:
    """The shard (lcore) owning a client endpoint: fe_steer_client, the C function itself."""
    return int(_lib(False).fe_steer_client(_ip(client.host), client.port, shards))


def _ip(host: str) -> int:
    return int(ipaddress.IPv4Address(host))


def _addr(ip: int, port: int) -> Address:
    return Address(str(ipaddress.IPv4Address(ip)), port)


def decode_actions(buf: bytes) -> list[Action]:
    """The action records of fe_machine.h as reference action objects."""
    out: list[Action] = []
    i = 0
    while i < len(buf):
        kind = buf[i]
        if kind == 1:
            (n,) = struct.unpack_from("<I", buf, i + 1)
            out.append(Transmit(bytes(buf[i + 5:i + 5 + n])))
            i += 5 + n
        elif kind == 2:
            cip, cp, vip, vp, bip, bp, mode = struct.unpack_from("<IHIHIHB", buf, i + 1)
            out.append(Offload(_addr(cip, cp), _addr(vip, vp), _addr(bip, bp), _MODES[mode]))
            i += 20
        elif kind == 3:
            cip, cp, vip, vp = struct.unpack_from("<IHIH", buf, i + 1)
            out.append(Unoffload(_addr(cip, cp), _addr(vip, vp)))
            i += 13
        else:
            raise ValueError(f"bad action record kind {kind} at {i}")
    return out


def encode_actions(actions: list[Action]) -> bytes:
    """The inverse of ``decode_actions``: reference actions as fe_machine.h records."""
    out = bytearray()
    for a in actions:
        if isinstance(a, Transmit):
            out += struct.pack("<BI", 1, len(a.packet)) + a.packet
        elif isinstance(a, Offload):
            out += struct.pack("<BIHIHIHB", 2, _ip(a.client.host), a.client.port,
                               _ip(a.vip.host), a.vip.port, _ip(a.backend.host),
                               a.backend.port, _MODES.index(a.mode))
        else:
            out += struct.pack("<BIHIH", 3, _ip(a.client.host), a.client.port,
                               _ip(a.vip.host), a.vip.port)
    return bytes(out)


class CFrontend:
    """The C machine with the reference's configuration and per-VIP program deciders."""

    def __init__(self, config: FrontendConfig, deciders: Mapping[Address, ProgramDecider],
                 secrets: CookieSecrets, asan: bool = False) -> None:
        self.lib = lib = _lib(asan)
        self.h = lib.mfe_new()
        if not self.h:
            raise MemoryError("mfe_new")
        c = config
        lib.mfe_set_params(self.h, ctypes.byref(_Params(
            c.max_head, c.syn_rto_ns, c.syn_retries, c.idle_timeout_ns,
            c.offloaded_idle_timeout_ns, c.close_grace_ns, int(c.pool_affinity))))
        for slot, key in enumerate(c.agent_keys):
            if key is not None:
                lib.mfe_set_agent_key(self.h, slot, key, int(slot == c.agent_key_slot))
        self.set_secrets(secrets)
        for vip, vp in c.vips.items():
            d = deciders[vip]
            blob = encode(d.program)
            err = ctypes.create_string_buffer(256)
            if lib.mfe_add_vip(self.h, _ip(vip.host), vip.port, vp.wscale, vp.mss, blob,
                               len(blob), err, 256):
                raise ValueError(f"VIP {vip}: {err.value.decode(errors='replace')}")
            for pi, backends in enumerate(d.pools):
                for b in backends:
                    lib.mfe_add_backend(self.h, _ip(vip.host), vip.port, pi, _ip(b.host),
                                        b.port)

    def close(self) -> None:
        if self.h:
            self.lib.mfe_free(self.h)
            self.h = None

    def __del__(self) -> None:
        self.close()

    def set_secrets(self, secrets: CookieSecrets) -> None:
        self.lib.mfe_set_cookie_keys(self.h, secrets.current, secrets.previous)

    def _out(self) -> list[Action]:
        n = _c_sz()
        p = self.lib.mfe_out(self.h, ctypes.byref(n))
        return decode_actions(ctypes.string_at(p, n.value)) if n.value else []

    def receive(self, raw: bytes, now_ns: int) -> list[Action]:
        self.lib.mfe_receive(self.h, raw, len(raw), now_ns)
        return self._out()

    def expire(self, now_ns: int) -> list[Action]:
        self.lib.mfe_expire(self.h, now_ns)
        return self._out()

    def next_deadline(self) -> int | None:
        t = self.lib.mfe_next_deadline(self.h)
        return None if t == -(1 << 63) else int(t)

    def oldest_ns(self) -> int | None:
        t = self.lib.mfe_oldest_ns(self.h)
        return None if t == -(1 << 63) else int(t)

    @property
    def counters(self) -> Counter[str]:
        return Counter({n: self.lib.mfe_counter(self.h, i) for i, n in enumerate(COUNTER_NAMES)
                        if self.lib.mfe_counter(self.h, i)})

    @property
    def nconns(self) -> int:
        return int(self.lib.mfe_nconns(self.h))

    @property
    def nlegs(self) -> int:
        return int(self.lib.mfe_nlegs(self.h))

    def steer(self, raw: bytes, shards: int) -> int:
        """fe_steer.h's owner of ``raw`` among ``shards`` for this machine's VIPs (-1: any)."""
        return int(self.lib.mfe_steer(self.h, raw, len(raw), shards))

    @property
    def oom(self) -> int:
        return int(self.lib.mfe_oom(self.h))
