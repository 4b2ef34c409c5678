"""The front-end's I/O shell: an AF_PACKET socket on one interface around the machine.

Frames in -> ``Frontend.receive`` -> frames out; offload requests are collected per loop
turn and applied to the switch in one batch (``OffloadApplier``); timers from
``Frontend.next_deadline``. The shell also keeps the cookie secrets in step with the
switch: it reads the switch's ``cookie_secret`` table (the controller rotates it there)
at most once a second, so there is one copy of the secret, the switch's.

The interface belongs to a host whose kernel must not answer for the flows the switch
steers here (they are addressed to the VIP and to clients, not to this host); with IP
forwarding off (a fresh namespace's default) the kernel drops them silently.
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import struct
import time
from collections import Counter
from pathlib import Path
from typing import Any

from .. import cookie
from ..api import Address, OffloadMode
from ..dataplane import names
from ..dataplane.schema import OffloadModeId
from .machine import Frontend
from .state import Action, Offload, Transmit, Unoffload

__all__ = ["OffloadApplier", "PacketShell"]

log = logging.getLogger("miresga.frontend")

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4
_MODES = {OffloadMode.SPLICE: OffloadModeId.SPLICE, OffloadMode.PIN: OffloadModeId.PIN}


def _mac(text: str) -> bytes:
    raw = bytes.fromhex(text.replace(":", ""))
    if len(raw) != 6:
        raise ValueError(f"{text!r} is not a MAC address")
    return raw


class OffloadApplier:
    """Applies offload / unoffload requests to the switch (an ``XdpSwitch``) in batches."""

    def __init__(self, switch: Any) -> None:
        self.switch = switch
        self.index: dict[Address, int] = {}
        self.counters: Counter[str] = Counter()

    def backend_index(self, backend: Address) -> int:
        idx = self.index.get(backend)
        if idx is None:
            entry = self.switch.read(names.BACKEND_ADDR, {"addr": backend.host,
                                                          "port": backend.port})
            if entry is None:
                raise KeyError(f"backend {backend} is not in the switch's backend table")
            idx = self.index[backend] = int(entry["index"])
        return idx

    def apply(self, requests: list[Offload | Unoffload]) -> None:
        """In order (an unoffload then an offload of the same flow must stay so)."""
        for r in requests:
            client, vip = (r.client.host, r.client.port), (r.vip.host, r.vip.port)
            try:
                if isinstance(r, Offload):
                    self.switch.offload_add(client, vip, self.backend_index(r.backend),
                                            (r.backend.host, r.backend.port), _MODES[r.mode])
                    self.counters["offload_applied"] += 1
                else:
                    self.switch.offload_remove(client, vip)
                    self.counters["unoffload_applied"] += 1
            except (KeyError, OSError) as exc:
                # the flow keeps working through the front-end, only slower
                self.counters["offload_failed"] += 1
                log.warning("offload request %s failed: %s", r, exc)
        if requests:
            self.counters["batches"] += 1


class PacketShell:
    """Runs a Frontend on an interface until ``stop_at`` (monotonic) or a stop file."""

    def __init__(self, fe: Frontend, iface: str, applier: OffloadApplier, *,
                 gateway_mac: str, stats_file: Path | None = None) -> None:
        self.fe = fe
        self.iface = iface
        self.applier = applier
        self.gateway = _mac(gateway_mac)
        self.stats_file = stats_file
        self.counters: Counter[str] = Counter()
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP))
        self.sock.bind((iface, ETH_P_IP))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.setblocking(False)
        self.own = self.sock.getsockname()[4][:6]
        self._secret_read = 0.0

    def close(self) -> None:
        self.sock.close()

    def refresh_secrets(self) -> None:
        """Take the cookie keys from the switch (current and previous slots)."""
        sw = self.applier.switch
        keys = []
        for i in (0, 1):
            e = sw.read(names.COOKIE_SECRET, {"index": i})
            keys.append(None if e is None or not (e["k0"] or e["k1"])
                        else struct.pack("<II", e["k0"], e["k1"]))
        if keys[0] is not None:
            self.fe.set_secrets(cookie.CookieSecrets(keys[0], keys[1]))

    def run(self, stop_at: float | None = None, stop_file: Path | None = None) -> None:
        last_stats = 0.0
        while stop_at is None or time.monotonic() < stop_at:
            now_mono = time.monotonic()
            if now_mono - self._secret_read >= 1.0:
                self.refresh_secrets()
                self._secret_read = now_mono
            if now_mono - last_stats >= 0.5:
                self.write_stats()
                last_stats = now_mono
                if stop_file is not None and stop_file.exists():
                    break
            self.turn(self._timeout())
        self.write_stats()

    def _timeout(self) -> float:
        deadline = self.fe.next_deadline()
        if deadline is None:
            return 0.2
        return min(0.2, max(0.0, (deadline - time.time_ns()) / 1e9))

    def turn(self, timeout: float) -> None:
        """One loop turn: wait, drain the socket, run timers, send, apply offloads."""
        select.select([self.sock], [], [], timeout)
        actions: list[Action] = []
        for _ in range(256):  # bounded: timers and offloads get their turn
            try:
                frame, addr = self.sock.recvfrom(65535)
            except BlockingIOError:
                break
            if addr[2] == PACKET_OUTGOING or len(frame) < 14:
                continue
            self.counters["rx_frames"] += 1
            actions += self.fe.receive(frame[14:], time.time_ns())
        actions += self.fe.expire(time.time_ns())
        self._act(actions)

    def _act(self, actions: list[Action]) -> None:
        # offloads first: a released request's response then finds the switch ready and
        # bypasses the front-end from its first packet
        self.applier.apply([a for a in actions if not isinstance(a, Transmit)])
        header = self.gateway + self.own + struct.pack("!H", ETH_P_IP)
        for a in actions:
            if isinstance(a, Transmit):
                try:
                    self.sock.send(header + a.packet)
                    self.counters["tx_frames"] += 1
                except OSError as exc:
                    self.counters["tx_errors"] += 1
                    log.warning("send failed: %s", exc)

    def stats(self) -> dict[str, Any]:
        return {"shell": dict(self.counters), "machine": dict(self.fe.counters),
                "offload": dict(self.applier.counters), "conns": len(self.fe.conns),
                "oldest_ns": self.fe.oldest_ns(), "written_ns": time.time_ns(),
                "legs": len(self.fe.legs)}

    def write_stats(self) -> None:
        if self.stats_file is None:
            return
        tmp = self.stats_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.stats()))
        os.replace(tmp, self.stats_file)
