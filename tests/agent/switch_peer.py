"""A raw-packet test peer that plays the switch + front-end towards one backend.

It forges the Miresga SYN (source = the client's address, seq = client ISN), checks the
SYN-ACK comes back in the switch's space (seq = seq_base), sends an HTTP request and
receives the response as a minimal TCP receiver: in-order reassembly, out-of-order
segments kept, cumulative ACKs with SACK blocks (so the backend's kernel can recover from
loss selectively), FIN handling. Every number it sends or expects is in the switch's
sequence space; nothing is translated here.

With ``timestamps`` the peer plays a client connection that negotiated timestamps (RFC
7323): the forged SYN carries the trailer (TSval = the peer's clock, ts_base = the last
timestamp of "ours" the client accepted), every segment it sends carries NOP,NOP,TS with
its clock and the latest TSval it received, and every segment it receives must carry a
TSval in the switch's clock: the SYN-ACK's exactly ts_base, later ones at or after it,
never going back, each echoing a TSval the peer sent.

Speed: an AF_PACKET socket with a classic BPF filter (only the backend's TCP segments of
this flow reach Python), packets parsed with ``struct`` (scapy only builds the SYN), ACKs
from a prebuilt header with the checksum computed incrementally in Python. Every loop is
bounded by a deadline.
"""

from __future__ import annotations

import ctypes
import random
import socket
import struct
import time
from dataclasses import dataclass, field

from scapy.layers.inet import IP, TCP
from scapy.packet import Raw

from miresga_core.wire import option
from miresga_core.wire.option import MiresgaOption

ETH_P_IP = 0x0800
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
M32 = 0xFFFFFFFF


class PeerError(AssertionError):
    """The backend (through the agent) did something the switch's side must not see."""


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def option_kinds(options: bytes) -> list[int]:
    """TCP option kinds in an options block, in order (NOPs included)."""
    kinds, i = [], 0
    while i < len(options) and options[i] != 0:
        kinds.append(options[i])
        i += 1 if options[i] == 1 else max(2, options[i + 1] if i + 1 < len(options) else 2)
    return kinds


def timestamps_of(options: bytes) -> tuple[int, int] | None:
    """(TSval, TSecr) of the timestamps option in an options block, or None."""
    i = 0
    while i + 1 < len(options) and options[i] != 0:
        if options[i] == 1:
            i += 1
            continue
        if options[i] == 8 and options[i + 1] == 10 and i + 10 <= len(options):
            return struct.unpack_from("!II", options, i + 2)  # type: ignore[return-value]
        i += max(2, options[i + 1])
    return None


def tcp_checksum_ok(ip: bytes, tcp: bytes) -> bool:
    pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, len(tcp))
    return _csum(pseudo + tcp) == 0xFFFF


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def _attach_filter(sock: socket.socket, src_ip: str, src_port: int, dst_port: int) -> None:
    """cBPF: IPv4, TCP, from src_ip, no IP options, src_port -> dst_port; else drop."""
    ip = struct.unpack("!I", socket.inet_aton(src_ip))[0]
    prog = [
        (0x28, 0, 0, 12), (0x15, 0, 9, ETH_P_IP),         # ldh [12]; ethertype IPv4
        (0x30, 0, 0, 23), (0x15, 0, 7, 6),                # ldb [23]; protocol TCP
        (0x20, 0, 0, 26), (0x15, 0, 5, ip),               # ld  [26]; source address
        (0x30, 0, 0, 14), (0x15, 0, 3, 0x45),             # ldb [14]; version 4, ihl 5
        (0x20, 0, 0, 34), (0x15, 0, 1, (src_port << 16) | dst_port),  # ports
        (0x06, 0, 0, 0x40000),                            # accept (up to 256 KiB)
        (0x06, 0, 0, 0),                                  # drop
    ]
    insns = (_SockFilter * len(prog))(*[_SockFilter(*p) for p in prog])
    fprog = _SockFprog(len(prog), insns)
    # the kernel copies the program during setsockopt; nothing has to stay alive
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))


@dataclass
class TransferResult:
    data: bytes
    segments: int = 0
    duplicate_segments: int = 0
    out_of_order: int = 0
    sack_acks: int = 0
    acks_sent: int = 0
    bad_checksums: int = 0
    windows: list[int] = field(default_factory=list)
    synack_seq: int = 0
    seconds: float = 0.0
    fin_seen: bool = False
    injected_losses: int = 0
    max_payload: int = 0
    injected_reorders: int = 0
    ts_segments: int = 0  # received segments with a timestamps option
    ts_missing: int = 0  # ... without one (timestamps mode)
    ts_behind_base: int = 0  # TSval before ts_base: not in the switch's clock
    ts_backwards: int = 0  # TSval older than the previous one
    ts_bad_echo: int = 0  # TSecr that is not a TSval of ours
    ts_max_advance: int = 0  # largest TSval - ts_base seen


class SwitchPeer:
    """One spliced flow from the switch's side. Create the socket inside the peer netns."""

    def __init__(self, sock: socket.socket, *, client: str, backend: str, backend_port: int,
                 peer_mac: str, backend_mac: str, key: bytes, client_ws: int = 7,
                 switch_ws: int = 5, mss: int = 1400, window: int = 1024,
                 check_checksums: bool = False, loss: float = 0.0, reorder: float = 0.0,
                 seed: int = 1, timestamps: bool = False) -> None:
        self.sock = sock
        self.client, self.backend, self.bport = client, backend, backend_port
        self.cport = random.randint(20000, 60000)
        self.base = random.getrandbits(32)
        self.isn = random.getrandbits(32)
        self.opt = MiresgaOption(self.base, mss, client_ws, switch_ws, True)
        self.key = key
        self.window = window  # advertised, in the client's scale
        self.check_checksums = check_checksums
        self.eth = (bytes.fromhex(backend_mac.replace(":", "")) +
                    bytes.fromhex(peer_mac.replace(":", "")) + b"\x08\x00")
        self.snd_nxt = (self.isn + 1) & M32
        self.synack_options = b""
        # impairment for kernels without netem: a segment "lost" here was never seen by the
        # receiver, which is all the backend can observe of a loss on the wire
        self.loss, self.reorder = loss, reorder
        self.rng = random.Random(seed)
        self.timestamps = timestamps
        self.ts_base = random.getrandbits(32)  # our clock, as the client last accepted it
        self.ts_clock0 = random.getrandbits(32)  # the client's own clock at start
        self.ts_recent = 0  # latest TSval received (echoed as TSecr)
        self.ts_sent: tuple[int, int] = (self._tsval(), self._tsval())  # oldest, newest
        self.synack_ts: tuple[int, int] | None = None
        _attach_filter(sock, backend, backend_port, self.cport)
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
        self._drain()  # frames queued under an earlier flow's filter are not ours

    def _drain(self, limit: int = 100000) -> None:
        self.sock.setblocking(False)
        try:
            for _ in range(limit):
                self.sock.recv(1 << 18)
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)

    @classmethod
    def open_socket(cls, ifname: str) -> socket.socket:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # no traffic until bound
        s.bind((ifname, 0))
        return s

    def bind(self, ifname: str) -> None:
        """Start receiving IPv4 frames (after the filter is attached: no race)."""
        self.sock.bind((ifname, ETH_P_IP))

    # -- sending ------------------------------------------------------------------------
    def _tsval(self) -> int:
        """The client's timestamp clock: 1 ms ticks from a random start."""
        return (self.ts_clock0 + int(time.monotonic() * 1000)) & M32

    def _next_tsval(self) -> int:
        """The clock now, remembered as the newest TSval sent (echoes must not pass it)."""
        tsval = self._tsval()
        self.ts_sent = (self.ts_sent[0], tsval)
        return tsval

    def _ts_option(self) -> bytes:
        return b"\x01\x01\x08\x0a" + struct.pack("!II", self._next_tsval(), self.ts_recent)

    def _send_tcp(self, seq: int, ack: int, flags: int, payload: bytes = b"",
                  options: bytes = b"") -> None:
        if self.timestamps:
            options = self._ts_option() + options
        doff = (20 + len(options)) // 4
        tcp = struct.pack("!HHIIBBHHH", self.cport, self.bport, seq & M32, ack & M32,
                          doff << 4, flags, self.window, 0, 0) + options + payload
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0,
                         socket.inet_aton(self.client), socket.inet_aton(self.backend))
        ip = ip[:10] + struct.pack("!H", 0xFFFF - _csum(ip)) + ip[12:]
        pseudo = ip[12:20] + struct.pack("!BBH", 0, 6, len(tcp))
        tcp = tcp[:16] + struct.pack("!H", 0xFFFF - _csum(pseudo + tcp)) + tcp[18:]
        self.sock.send(self.eth + ip + tcp)

    def send_syn(self) -> None:
        opt = option.encode(self.opt, key=self.key, saddr=self.client, daddr=self.backend,
                            sport=self.cport, dport=self.bport, seq=self.isn)
        if self.timestamps:  # form (b): the trailer after the Miresga option
            opt += option.ts_trailer(self._next_tsval(), self.ts_base)
        pkt = (IP(src=self.client, dst=self.backend, flags="DF") /
               TCP(sport=self.cport, dport=self.bport, seq=self.isn, flags="S",
                   window=self.window, dataofs=5 + len(opt) // 4) / Raw(opt))
        self.sock.send(self.eth + bytes(pkt))

    # -- receiving ----------------------------------------------------------------------
    def _recv(self, buf: bytearray, timeout: float) -> tuple[int, int, int, int, bytes] | None:
        """(seq, ack, flags, window, payload) of the next segment, or None on timeout."""
        self.sock.settimeout(timeout)
        try:
            n = self.sock.recv_into(buf)
        except TimeoutError:
            return None
        frame = memoryview(buf)[:n]
        tot = struct.unpack_from("!H", frame, 16)[0]
        ip = frame[14:14 + tot]
        seq, ack, off, flags, win = struct.unpack_from("!IIBBH", ip, 24)
        tcp = ip[20:]
        if flags & SYN:
            self.synack_options = bytes(tcp[20:(off >> 4) * 4])
        if self.timestamps:
            self._check_ts(bytes(tcp[20:(off >> 4) * 4]), bool(flags & SYN))
        if self.check_checksums and not tcp_checksum_ok(bytes(ip[:20]), bytes(tcp)):
            self.result.bad_checksums += 1
        return seq, ack, flags, win, bytes(tcp[(off >> 4) * 4:])

    def _check_ts(self, options: bytes, syn: bool) -> None:
        """Every backend segment's TSval must be in the switch's clock (see the module
        docstring); counted in the result, asserted by the test."""
        r, ts = self.result, timestamps_of(options)
        if ts is None:
            r.ts_missing += 1
            return
        tsval, tsecr = ts
        r.ts_segments += 1
        advance = (tsval - self.ts_base) & M32
        if advance >= 1 << 31:
            r.ts_behind_base += 1
        elif self.ts_recent and (tsval - self.ts_recent) & M32 >= 1 << 31:
            r.ts_backwards += 1
        else:
            r.ts_max_advance = max(r.ts_max_advance, advance)
        oldest, newest = self.ts_sent
        if (tsecr - oldest) & M32 > (newest - oldest) & M32:
            r.ts_bad_echo += 1
        if syn:
            self.synack_ts = ts
        if advance < 1 << 31 and (not self.ts_recent or
                                  (tsval - self.ts_recent) & M32 < 1 << 31):
            self.ts_recent = tsval  # RFC 7323 4.3: echo the newest in-window TSval

    def handshake(self, timeout: float = 5.0) -> None:
        self.result = TransferResult(b"")
        buf = bytearray(1 << 18)
        deadline = time.monotonic() + timeout
        self.send_syn()
        while time.monotonic() < deadline:
            seg = self._recv(buf, 0.5)
            if seg is None:
                self.send_syn()  # retransmit, as a front-end would
                continue
            seq, ack, flags, _, _ = seg
            if flags & (SYN | ACK) == SYN | ACK:
                self.result.synack_seq = seq
                if seq != self.base:
                    raise PeerError(f"SYN-ACK seq {seq:#x} is not seq_base {self.base:#x}: "
                                    "not translated into the switch's space")
                if ack != (self.isn + 1) & M32:
                    raise PeerError(f"SYN-ACK acks {ack:#x}, want client ISN + 1")
                return
            if flags & RST:
                raise PeerError("backend answered the SYN with RST")
        raise PeerError("no SYN-ACK within the timeout (SYN dropped?)")

    def fetch(self, request: bytes, *, expect_len: int, timeout: float = 60.0,
              on_progress: object = None) -> TransferResult:
        """Send ``request``, receive ``expect_len`` bytes of response and the FIN."""
        r = self.result
        base1 = (self.base + 1) & M32
        buf = bytearray(1 << 18)
        data = bytearray()
        ooo: dict[int, bytes] = {}  # start offset -> bytes, beyond len(data)
        recent: list[tuple[int, int]] = []  # most recent out-of-order ranges first
        fin_at: int | None = None
        self._send_tcp(self.snd_nxt, base1, PSH | ACK, request)
        self.snd_nxt = (self.snd_nxt + len(request)) & M32
        start = time.monotonic()
        deadline = start + timeout
        unacked = 0
        progress_called = False
        held: tuple[int, int, int, int, bytes] | None = None
        pending: list[tuple[int, int, int, int, bytes]] = []
        while time.monotonic() < deadline:
            if not pending:
                seg = self._recv(buf, 0.2)
                if seg is None:  # quiet: repeat our ACK so a lost one cannot stall us
                    if held is not None:
                        pending.append(held)
                        held = None
                    else:
                        self._ack(base1, data, ooo, recent, fin_at)
                    continue
                pending.append(seg)
                if seg[4] and not seg[2] & FIN:
                    if self.rng.random() < self.loss:
                        r.injected_losses += 1
                        pending.pop()
                        continue
                    if held is None and self.rng.random() < self.reorder:
                        held = pending.pop()  # delivered after the next segment
                        r.injected_reorders += 1
                        continue
                if held is not None:
                    pending.append(held)
                    held = None
            seq, _ack, flags, win, payload = pending.pop(0)
            if flags & RST:
                raise PeerError(f"RST after {len(data)} bytes")
            r.segments += 1
            r.windows.append(win)
            r.max_payload = max(r.max_payload, len(payload))
            off = (seq - base1) & M32
            if off >= 1 << 31:  # behind us (old retransmission) or not our space at all
                off -= 1 << 32
            if off > expect_len + (1 << 20) or off < -(1 << 20):
                raise PeerError(f"segment seq {seq:#x} (offset {off}) is outside the switch's "
                                f"space around base {self.base:#x}: not translated")
            in_order = self._store(off, payload, data, ooo, recent, r)
            if flags & FIN:
                fin_at = off + len(payload)
            unacked += 1
            if not in_order or unacked >= 2 or flags & FIN or ooo:
                self._ack(base1, data, ooo, recent, fin_at)
                unacked = 0
            if on_progress and not progress_called and len(data) > (1 << 20):
                on_progress()  # type: ignore[operator]
                progress_called = True
            if fin_at is not None and len(data) >= fin_at:
                r.fin_seen = True
                break
        r.seconds = time.monotonic() - start
        r.data = bytes(data)
        if not r.fin_seen:
            raise PeerError(f"no complete response within {timeout} s: {len(data)} of "
                            f"{expect_len} bytes in order, {len(ooo)} segments out of order")
        return r

    def _store(self, off: int, payload: bytes, data: bytearray, ooo: dict[int, bytes],
               recent: list[tuple[int, int]], r: TransferResult) -> bool:
        end = off + len(payload)
        if not payload:
            return True
        if end <= len(data) or ooo.get(off) == payload:
            r.duplicate_segments += 1
            return False
        if off > len(data):
            ooo[off] = payload
            r.out_of_order += 1
            recent.insert(0, (off, end))
            return False
        data += payload[len(data) - off:]
        while True:  # pull in out-of-order segments that now fit
            nxt = [s for s in ooo if s <= len(data)]
            if not nxt:
                break
            for s in sorted(nxt):
                chunk = ooo.pop(s)
                if s + len(chunk) > len(data):
                    data += chunk[len(data) - s:]
        recent[:] = [(s, e) for s, e in recent if e > len(data)]
        return True

    def _sack_blocks(self, data: bytearray, ooo: dict[int, bytes],
                     recent: list[tuple[int, int]]) -> list[tuple[int, int]]:
        # merge held segments into ranges, report the most recently touched first (RFC 2018)
        ranges: list[list[int]] = []
        for s in sorted(ooo):
            e = s + len(ooo[s])
            if ranges and s <= ranges[-1][1]:
                ranges[-1][1] = max(ranges[-1][1], e)
            else:
                ranges.append([s, e])
        order = []
        for s, _ in recent:
            for rg in ranges:
                if rg[0] <= s < rg[1] and rg not in order:
                    order.append(rg)
        order += [rg for rg in ranges if rg not in order]
        return [(a, b) for a, b in order[:4]]

    def _ack(self, base1: int, data: bytearray, ooo: dict[int, bytes],
             recent: list[tuple[int, int]], fin_at: int | None) -> None:
        ack_off = len(data) + (1 if fin_at is not None and len(data) >= fin_at else 0)
        opts = b""
        blocks = self._sack_blocks(data, ooo, recent) if ooo else []
        blocks = blocks[:3] if self.timestamps else blocks  # 40 option bytes: TS + 3 blocks
        if blocks:
            opts = b"\x01\x01" + bytes([5, 2 + 8 * len(blocks)]) + b"".join(
                struct.pack("!II", (base1 + a) & M32, (base1 + b) & M32) for a, b in blocks)
            self.result.sack_acks += 1
        self._send_tcp(self.snd_nxt, base1 + ack_off, ACK, options=opts)
        self.result.acks_sent += 1

    def close(self, fin_offset: int, timeout: float = 5.0) -> bool:
        """Send our FIN (ack covers the backend's FIN) and wait for its ACK."""
        base1 = (self.base + 1) & M32
        buf = bytearray(1 << 18)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._send_tcp(self.snd_nxt, base1 + fin_offset + 1, FIN | ACK)
            seg = self._recv(buf, 0.5)
            if seg and seg[2] & ACK and seg[1] == (self.snd_nxt + 1) & M32:
                self.snd_nxt = (self.snd_nxt + 1) & M32
                return True
        return False
