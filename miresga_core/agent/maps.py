"""Typed access to the agent's maps: config (keys, timeouts), flows, global counters.

Works on a loaded object (tests) or on the maps pinned under ``/sys/fs/bpf/miresga/<iface>``
(the CLI's status view). Layouts come from :mod:`.shared`, the same source as the C header.
"""

from __future__ import annotations

import ipaddress
import os
import stat
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..bpf import BpfObject, Map
from ..errors import MiresgaError
from .shared import (
    CONFIG,
    COUNTERS,
    DEFAULT_GRACE_S,
    DEFAULT_IDLE_TIMEOUT_S,
    FLOW,
    FLOW_FLAGS,
    FLOW_KEY,
    MAP_CONFIG,
    MAP_COUNTERS,
    MAP_FLOWS,
)

__all__ = ["AgentMaps", "FlowEntry", "flow_key", "read_secret_file"]

_ZERO = struct.pack("=I", 0)


def flow_key(client: str, client_port: int, backend: str, backend_port: int) -> bytes:
    """The flows-map key of a flow, seen from the client's side."""
    return FLOW_KEY.pack(client_addr=ipaddress.IPv4Address(client).packed,
                         backend_addr=ipaddress.IPv4Address(backend).packed,
                         client_port=client_port.to_bytes(2, "big"),
                         backend_port=backend_port.to_bytes(2, "big"))


@dataclass(frozen=True)
class FlowEntry:
    """One flow: endpoints plus the decoded ``struct flow`` fields and flag names."""

    client: str
    client_port: int
    backend: str
    backend_port: int
    state: dict[str, Any]

    @property
    def flags(self) -> list[str]:
        return [n for i, n in enumerate(FLOW_FLAGS.names) if self.state["flags"] >> i & 1]

    @classmethod
    def decode(cls, key: bytes, value: bytes) -> FlowEntry:
        k = FLOW_KEY.unpack(key)
        return cls(str(ipaddress.IPv4Address(k["client_addr"])),
                   int.from_bytes(k["client_port"], "big"),
                   str(ipaddress.IPv4Address(k["backend_addr"])),
                   int.from_bytes(k["backend_port"], "big"), FLOW.unpack(value))


def read_secret_file(path: str | os.PathLike[str]) -> tuple[bytes | None, bytes | None]:
    """Keys shared with the controller: line 1 = key slot 0, optional line 2 = slot 1.

    Each key is 32 hex digits (128 bits); ``#`` starts a comment; a ``-`` line leaves a
    slot empty. The file must not be readable by group or others.
    """
    p = Path(path)
    try:
        st = p.stat()
        text = p.read_text()
    except OSError as exc:
        raise MiresgaError(f"secret file {p}: {exc.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise MiresgaError(f"secret file {p} is accessible by group/others; chmod 600 it")
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln]
    if not 1 <= len(lines) <= 2:
        raise MiresgaError(f"secret file {p}: want 1 or 2 keys (32 hex digits each), "
                           f"found {len(lines)} lines")
    keys: list[bytes | None] = []
    for i, ln in enumerate(lines):
        if ln == "-":
            keys.append(None)
            continue
        try:
            key = bytes.fromhex(ln)
        except ValueError:
            key = b""
        if len(key) != 16:
            raise MiresgaError(f"secret file {p}: key {i} is not 32 hex digits")
        keys.append(key)
    keys += [None] * (2 - len(keys))
    if keys == [None, None]:
        raise MiresgaError(f"secret file {p}: no key set")
    return keys[0], keys[1]


class AgentMaps:
    """The three agent maps, by name (see shared.MAP_*)."""

    def __init__(self, flows: Map, config: Map, counters: Map) -> None:
        self.flows_map, self.config_map, self.counters_map = flows, config, counters

    @classmethod
    def from_object(cls, obj: BpfObject) -> AgentMaps:
        return cls(obj.map(MAP_FLOWS), obj.map(MAP_CONFIG), obj.map(MAP_COUNTERS))

    @classmethod
    def from_pins(cls, pin_dir: Path) -> AgentMaps:
        return cls(Map.from_pinned(pin_dir / MAP_FLOWS), Map.from_pinned(pin_dir / MAP_CONFIG),
                   Map.from_pinned(pin_dir / MAP_COUNTERS))

    def close(self) -> None:
        for m in (self.flows_map, self.config_map, self.counters_map):
            m.close()

    def set_config(self, keys: tuple[bytes | None, bytes | None], *,
                   idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
                   grace_s: float = DEFAULT_GRACE_S) -> None:
        words, mask = [0, 0, 0, 0], 0
        for slot, key in enumerate(keys):
            if key is not None:
                words[2 * slot], words[2 * slot + 1] = struct.unpack("<QQ", key)
                mask |= 1 << slot
        self.config_map.update(_ZERO, CONFIG.pack(
            keys=words, key_mask=mask, idle_timeout_ns=int(idle_timeout_s * 1e9),
            grace_ns=int(grace_s * 1e9)))

    def config(self) -> dict[str, Any]:
        raw = self.config_map.lookup(_ZERO)
        assert raw is not None  # arrays always have their entries
        return CONFIG.unpack(raw)

    def counters(self) -> dict[str, int]:
        """Global counters summed over CPUs, by name."""
        out = {}
        for i, name in enumerate(COUNTERS.names):
            slots = self.counters_map.lookup_percpu(struct.pack("=I", i)) or []
            out[name] = sum(struct.unpack("=Q", s)[0] for s in slots)
        return out

    def reset_counters(self) -> None:
        zero = bytes(self.counters_map.user_value_size)
        for i in range(len(COUNTERS.names)):
            self.counters_map.update(struct.pack("=I", i), zero)

    def flows(self, limit: int | None = None) -> list[FlowEntry]:
        return [FlowEntry.decode(k, v) for k, v in self.flows_map.items(limit)]

    def flow(self, client: str, client_port: int, backend: str,
             backend_port: int) -> FlowEntry | None:
        key = flow_key(client, client_port, backend, backend_port)
        raw = self.flows_map.lookup(key)
        return None if raw is None else FlowEntry.decode(key, raw)

    def sweep(self, now_ns: int | None = None) -> dict[str, int]:
        """Delete the flows the BPF side would delete on their next packet: closed longer
        than the grace period, or idle longer than the idle timeout. For flows that never
        see another packet (the LRU would evict them only under pressure).

        ``bpf_ktime_get_ns`` is CLOCK_MONOTONIC, the clock of ``time.monotonic_ns``.
        """
        now = time.monotonic_ns() if now_ns is None else now_ns
        cfg = self.config()
        removed = {"closed": 0, "idle": 0}
        for key, value in list(self.flows_map.items()):
            f = FLOW.unpack(value)
            # u64 differences, exactly as the BPF code computes them
            if f["closed_ns"] and (now - f["closed_ns"]) % 2**64 > cfg["grace_ns"]:
                why = "closed"
            elif cfg["idle_timeout_ns"] and (now - f["last_ns"]) % 2**64 > cfg[
                    "idle_timeout_ns"]:
                why = "idle"
            else:
                continue
            removed[why] += self.flows_map.delete(key)
        return removed

    def put_flow(self, client: str, client_port: int, backend: str, backend_port: int,
                 **state: Any) -> None:
        """Store a flow directly (tests seed or age entries with this)."""
        self.flows_map.update(flow_key(client, client_port, backend, backend_port),
                              FLOW.pack(**state))
