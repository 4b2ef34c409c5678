"""The packet-level front-end: a sans-I/O state machine (ARCHITECTURE.md, splice protocol).

Theory of operation
-------------------
Input: IPv4 packets the switch steered here (``receive(packet, now_ns)``) and the passage
of time (``expire(now_ns)``). Output: actions -- packets to transmit, offload and
unoffload requests for the switch. No sockets, no clocks: time is an argument, so a run
is a pure function of its inputs and can be recorded and replayed (``trace.py``).

Client side (packets to a VIP that match no offload entry, or payload/FIN/RST of a
spliced connection):
  * an unknown flow must carry a valid SYN cookie (``ack - 1``, current or previous slot
    and secret); anything else is dropped and counted, and gets no state;
  * payload is taken in order only (a later segment is dropped: the client resends it);
    it is buffered until the decider has a complete request head, then given to the
    connection's current backend *leg*, or to a new leg opened with a forged SYN
    (source = client, seq = request's first seq - 1, Miresga option with the server-side
    seq base = the client's ack - 1 and the client's MSS/window scale/SACK from the
    cookie). The front-end never acknowledges anything itself: the backend does;
  * a leg in SYN_SENT holds its bytes; the backend's SYN-ACK (seq already translated by
    the agent to the base) releases them and asks the switch to offload the flow;
  * a later request to another backend resets the old leg and opens a new one at the
    current seq/ack points -- unless the request is pipelined (the client has not seen a
    byte of the previous response yet), which keeps it on the current leg so responses
    cannot interleave;
  * a retransmitted segment the current leg already got is forwarded again (so a lost
    request packet is recovered by the client's own retransmission); it never opens a
    leg. A lost forged SYN is re-sent on a timer with back-off.
Backend side (packets from a leg that is not, or no longer, offloaded): the current
leg's packets are forwarded to the client with the source rewritten to the VIP; an old
leg's packets are dropped and answered with a RST.
Lifecycle: FINs are forwarded both ways (half-close works); state and offload entries go
when both FINs were seen plus a grace period. RST from either side tears down at once.
Idle connections expire.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from .. import cookie
from ..api import Address, NeedMore, OffloadMode, Reject
from ..wire import option
from . import packet as P
from .decider import Decider, Decision
from .packet import ACK, FIN, PSH, RST, SYN, Segment, seq_add, seq_diff
from .state import Action, Conn, Leg, LegState, Offload, Transmit, Unoffload

__all__ = ["COUNTER_NAMES", "Frontend", "FrontendConfig", "VipParams"]

S = 1_000_000_000
REORDER_WINDOW = 1 << 20  # client bytes ahead of next_seq still taken as reordering

COUNTER_NAMES = (
    "rx", "rx_client", "rx_backend", "malformed", "not_ours", "cookie_ok", "cookie_bad",
    "out_of_order", "retransmit_fwd", "requests", "rejected", "pipelined_kept",
    "leg_opened", "leg_switched", "syn_sent", "syn_retransmit", "syn_gave_up",
    "synack_ok", "synack_dup", "synack_bad", "old_leg_drop", "to_backend", "to_client",
    "offload", "unoffload", "fin_client", "fin_backend", "rst_client", "rst_backend",
    "closed", "expired", "head_too_big", "no_request_fin", "reincarnated", "tx",
    "leg_kept",
)


@dataclass(frozen=True)
class VipParams:
    """What the switch announces for a VIP service (its vip table entry)."""

    wscale: int = 7
    mss: int = 1460


@dataclass(frozen=True)
class FrontendConfig:
    vips: Mapping[Address, VipParams]
    agent_keys: tuple[bytes | None, bytes | None]  # SipHash-2-4 keys, slots 0 and 1
    agent_key_slot: int = 0
    max_head: int = 65536  # buffered bytes without a decision before the client is reset
    syn_rto_ns: int = S  # first forged-SYN retransmission timeout (doubles)
    syn_retries: int = 4
    idle_timeout_ns: int = 300 * S
    # an offloaded connection can move gigabytes without a packet reaching us (responses
    # and pure ACKs bypass the front-end): only a much longer silence means it is gone
    offloaded_idle_timeout_ns: int = 3600 * S
    close_grace_ns: int = 2 * S
    # balance = "connection": a request for the pool of the connection's current leg stays
    # on that leg, however the policy would spread it (a re-splice costs the backend a
    # connection in slow start, docs/xdp-dataplane.md)
    pool_affinity: bool = False

    def __post_init__(self) -> None:
        if self.agent_keys[self.agent_key_slot] is None:
            raise ValueError(f"no agent key in slot {self.agent_key_slot}")


class Frontend:
    """Packets in, actions out. One instance per front-end (all its VIPs)."""

    def __init__(self, config: FrontendConfig, decider: Decider | Mapping[Address, Decider],
                 secrets: cookie.CookieSecrets) -> None:
        # one decider for every VIP, or one per VIP (a listener each)
        self.config = config
        self.decider = decider
        self.secrets = secrets
        self.conns: dict[tuple[Address, Address], Conn] = {}
        self.legs: dict[tuple[Address, Address], tuple[Conn, Leg]] = {}  # (client, backend)
        self.old_legs: dict[tuple[Address, Address], tuple[int, int]] = {}  # -> (seq, t)
        self.counters: Counter[str] = Counter()

    # ------------------------------------------------------------------ public

    def set_secrets(self, secrets: cookie.CookieSecrets) -> None:
        self.secrets = secrets

    def receive(self, raw: bytes, now_ns: int) -> list[Action]:
        """One packet from the switch; the actions it causes."""
        self.counters["rx"] += 1
        try:
            seg = P.parse(raw)
        except P.PacketError:
            self.counters["malformed"] += 1
            return []
        out: list[Action] = []
        src, dst = Address(seg.src, seg.sport), Address(seg.dst, seg.dport)
        if dst in self.config.vips:
            self.counters["rx_client"] += 1
            self._client(seg, src, dst, now_ns, out)
        elif (dst, src) in self.legs or (dst, src) in self.old_legs:
            self.counters["rx_backend"] += 1
            self._backend(seg, dst, src, now_ns, out)
        else:
            self.counters["not_ours"] += 1
        self.counters["tx"] += sum(isinstance(a, Transmit) for a in out)
        return out

    def expire(self, now_ns: int) -> list[Action]:
        """Timers: forged-SYN retransmission, close grace, idle expiry."""
        out: list[Action] = []
        for conn in list(self.conns.values()):
            leg = conn.leg
            if now_ns - conn.last_ns >= self._idle_limit(conn):
                self.counters["expired"] += 1
                self._drop(conn, out)
            elif leg and leg.state is LegState.SYN_SENT and now_ns >= leg.syn_deadline:
                self._syn_timeout(conn, leg, now_ns, out)
            elif conn.closed_ns is not None and now_ns - conn.closed_ns >= \
                    self.config.close_grace_ns:
                self.counters["closed"] += 1
                self._drop(conn, out)
        for key, (_seq, t) in list(self.old_legs.items()):
            if now_ns - t >= self.config.close_grace_ns:
                del self.old_legs[key]
        self.counters["tx"] += sum(isinstance(a, Transmit) for a in out)
        return out

    def oldest_ns(self) -> int | None:
        """When the oldest live connection was accepted (None: no connection)."""
        return min((c.created_ns for c in self.conns.values()), default=None)

    def next_deadline(self) -> int | None:
        """The earliest time ``expire`` has something to do (None: nothing pending)."""
        times = []
        for conn in self.conns.values():
            if conn.leg and conn.leg.state is LegState.SYN_SENT:
                times.append(conn.leg.syn_deadline)
            elif conn.closed_ns is not None:
                times.append(conn.closed_ns + self.config.close_grace_ns)
            else:
                times.append(conn.last_ns + self._idle_limit(conn))
        times += [t + self.config.close_grace_ns for _s, t in self.old_legs.values()]
        return min(times) if times else None

    # ------------------------------------------------------------------ client side

    def _client(self, seg: Segment, client: Address, vip: Address, now: int,
                out: list[Action]) -> None:
        conn = self.conns.get((client, vip))
        if conn is not None and seg.seq != conn.next_seq and self._new_incarnation(
                conn, seg, now):
            # the client reused the port (our state was in its close grace period or
            # idle): the old connection is over
            self.counters["reincarnated"] += 1
            if conn.leg is not None:
                self._close_leg(conn, conn.leg, now, out)
            self._drop(conn, out)
            conn = None
        if conn is None:
            conn = self._accept(seg, client, vip, now)
            if conn is None:
                return
        conn.last_ns = now
        if seg.has(RST):
            self._client_rst(conn, seg, out)
            return
        if seg.has(SYN) or not seg.has(ACK):
            self.counters["malformed"] += 1
            return
        if seq_diff(seg.ack, conn.ack) > 0:
            conn.ack = seg.ack
        conn.window = seg.window
        _note_timestamps(conn, seg)
        d = seq_diff(seg.seq, conn.next_seq)
        if d > 0:
            self.counters["out_of_order"] += 1  # the client resends it in order
            return
        if d < 0:
            self._client_old(conn, seg, -d, out)
            return
        if seg.payload:
            conn.pending += seg.payload
            conn.next_seq = seq_add(conn.next_seq, len(seg.payload))
            self._pump(conn, now, out)
        elif not seg.has(FIN):
            self._client_ack(conn, seg, out)
        if seg.has(FIN) and self._alive(conn):
            conn.next_seq = seq_add(conn.next_seq, 1)
            conn.client_fin = True
            self.counters["fin_client"] += 1
            self._flush_fin(conn, now, out)

    def _accept(self, seg: Segment, client: Address, vip: Address, now: int) -> Conn | None:
        """A new flow: only an ACK whose ack - 1 is a valid cookie creates state."""
        if not seg.has(ACK) or seg.flags & (SYN | RST):
            self.counters["cookie_bad"] += 1
            return None
        isn = seq_add(seg.ack, -1)
        info = cookie.validate(self.secrets, isn, client.host, client.port, vip.host,
                               vip.port, cookie.slot_at(now))
        if info is None:
            self.counters["cookie_bad"] += 1
            return None
        self.counters["cookie_ok"] += 1
        conn = Conn(client, vip, info, isn, seg.seq, seg.ack, seg.window, now, now, seg.seq)
        self.conns[(client, vip)] = conn
        return conn

    def _new_incarnation(self, conn: Conn, seg: Segment, now: int) -> bool:
        """Whether an out-of-place ACK opens a new connection on the same client port
        (our state of the old one was in its close grace period, or idle). Client ISNs
        are random: a new incarnation's seq lies outside the old stream and outside the
        window ahead of it, and its ack - 1 is a valid cookie (the old one's own cookie
        again when the slot and options are the same: then the old connection must have
        been closed by the client)."""
        if seg.flags & (SYN | RST) or not seg.has(ACK):
            return False
        ahead = seq_diff(seg.seq, conn.next_seq)
        if seq_diff(seg.seq, conn.first_seq) >= 0 and ahead <= 0:
            return False  # a duplicate of the old stream
        if 0 < ahead <= REORDER_WINDOW:
            return False  # out of order in the old stream
        isn = seq_add(seg.ack, -1)
        if isn == conn.isn:
            return conn.client_fin
        return cookie.validate(self.secrets, isn, conn.client.host, conn.client.port,
                               conn.vip.host, conn.vip.port, cookie.slot_at(now)) is not None

    def _client_ack(self, conn: Conn, seg: Segment, out: list[Action]) -> None:
        """A pure ACK / window update: the current leg needs it until offloaded."""
        leg = conn.leg
        if leg and leg.state is LegState.ESTABLISHED:
            self._emit(out, seg.with_(dst=leg.backend.host, dport=leg.backend.port))
            self.counters["to_backend"] += 1

    def _client_old(self, conn: Conn, seg: Segment, dup: int, out: list[Action]) -> None:
        """A segment that starts before next_seq: a retransmission. Resend the part the
        current leg already got (its ACK may have been lost); take any new bytes."""
        leg = conn.leg
        if leg is not None and leg.state is LegState.ESTABLISHED and seg.payload:
            lo = max(0, seq_diff(leg.start_seq, seg.seq))
            hi = min(len(seg.payload), max(0, seq_diff(leg.sent_upto, seg.seq)))
            if lo < hi:
                self.counters["retransmit_fwd"] += 1
                self._emit_split(out, Segment(
                    seg.src, leg.backend.host, seg.sport, leg.backend.port,
                    seq_add(seg.seq, lo), conn.ack, ACK | PSH, conn.window,
                    payload=seg.payload[lo:hi]), leg.mss)
        if len(seg.payload) > dup:  # overlapping segment carrying new bytes too
            new = seg.with_(seq=conn.next_seq, payload=seg.payload[dup:])
            self._client(new, conn.client, conn.vip, conn.last_ns, out)

    def _client_rst(self, conn: Conn, seg: Segment, out: list[Action]) -> None:
        self.counters["rst_client"] += 1
        leg = conn.leg
        if leg and leg.state is LegState.ESTABLISHED:
            self._emit(out, Segment(seg.src, leg.backend.host, seg.sport, leg.backend.port,
                                    leg.sent_upto, conn.ack, RST | ACK, 0))
        self._drop(conn, out)

    # ------------------------------------------------------------------ requests

    def _pump(self, conn: Conn, now: int, out: list[Action]) -> None:
        """Give buffered bytes to legs, deciding at each request boundary."""
        while conn.pending and self._alive(conn):
            if conn.remaining and conn.leg is not None:
                n = len(conn.pending) if conn.remaining < 0 else min(conn.remaining,
                                                                     len(conn.pending))
                chunk = bytes(conn.pending[:n])
                del conn.pending[:n]
                if conn.remaining > 0:
                    conn.remaining -= n
                self._to_leg(conn, conn.leg, chunk, out)
                continue
            decider = (self.decider[conn.vip] if isinstance(self.decider, Mapping)
                       else self.decider)
            result = decider.decide(bytes(conn.pending), conn.client, now / S)
            if isinstance(result, NeedMore):
                if len(conn.pending) > self.config.max_head:
                    self.counters["head_too_big"] += 1
                    self._reset_client(conn, out)
                return
            if isinstance(result, Reject):
                self.counters["rejected"] += 1
                self._reset_client(conn, out)
                return
            self._dispatch(conn, result, now, out)

    def _dispatch(self, conn: Conn, d: Decision, now: int, out: list[Action]) -> None:
        self.counters["requests"] += 1
        conn.requests += 1
        leg = conn.leg
        if leg is not None and leg.backend != d.backend:
            if self._keeps_leg(leg, d):
                self.counters["leg_kept"] += 1
            elif self._pipelined(conn, leg):
                self.counters["pipelined_kept"] += 1
            else:
                self._close_leg(conn, leg, now, out)
                self.counters["leg_switched"] += 1
                leg = None
        if leg is None:
            leg = self._open_leg(conn, d, now, out)
        conn.remaining = d.length if d.length is not None else -1
        if d.length == 0:
            conn.remaining = -1  # a decider that cannot size the request: stay
        conn.dispatch_ack = conn.ack

    def _keeps_leg(self, leg: Leg, d: Decision) -> bool:
        """Pool affinity: the decision names the leg's pool and offload mode."""
        return self.config.pool_affinity and leg.pool == d.pool and leg.mode is d.mode

    def _pipelined(self, conn: Conn, leg: Leg) -> bool:
        """True when the client cannot have seen the previous response complete: the leg
        has not answered yet, or the client's ack has not moved since the last request
        was dispatched. Such a request stays on the current leg."""
        return (leg.state is LegState.SYN_SENT or bool(leg.held)
                or conn.dispatch_ack == conn.ack)

    def _open_leg(self, conn: Conn, d: Decision, now: int, out: list[Action]) -> Leg:
        start = seq_add(conn.next_seq, -len(conn.pending))
        leg = Leg(d.backend, d.mode, start, seq_add(conn.ack, -1), sent_upto=start,
                  syn_deadline=now + self.config.syn_rto_ns, pool=d.pool, ts=conn.ts)
        conn.leg = leg
        self.legs[(conn.client, leg.backend)] = (conn, leg)
        self.old_legs.pop((conn.client, leg.backend), None)
        self.counters["leg_opened"] += 1
        self._send_syn(conn, leg, out)
        return leg

    def _send_syn(self, conn: Conn, leg: Leg, out: list[Action]) -> None:
        info = conn.info
        vp = self.config.vips[conn.vip]
        slot = self.config.agent_key_slot
        key = self.config.agent_keys[slot]
        assert key is not None
        opt = option.MiresgaOption(leg.base, info.mss, info.wscale, vp.wscale, info.sack,
                                   slot)
        syn_seq = seq_add(leg.start_seq, -1)
        raw = option.encode(opt, key=key, saddr=conn.client.host, daddr=leg.backend.host,
                            sport=conn.client.port, dport=leg.backend.port, seq=syn_seq)
        if leg.ts is not None:  # the agent continues the client's timestamps from ts_base
            raw += option.ts_trailer(*leg.ts)
        window = min(0xFFFF, conn.window << (info.wscale or 0)) or 0xFFFF
        self._emit(out, Segment(conn.client.host, leg.backend.host, conn.client.port,
                                leg.backend.port, syn_seq, 0, SYN, window, options=raw))
        self.counters["syn_sent"] += 1

    def _syn_timeout(self, conn: Conn, leg: Leg, now: int, out: list[Action]) -> None:
        if leg.syn_tries > self.config.syn_retries:
            self.counters["syn_gave_up"] += 1
            self._reset_client(conn, out)
            return
        self.counters["syn_retransmit"] += 1
        self._send_syn(conn, leg, out)
        leg.syn_deadline = now + (self.config.syn_rto_ns << leg.syn_tries)
        leg.syn_tries += 1

    def _to_leg(self, conn: Conn, leg: Leg, data: bytes, out: list[Action]) -> None:
        if leg.state is LegState.SYN_SENT:
            leg.held += data
            return
        mss = max(64, leg.mss)
        for i in range(0, len(data), mss):
            piece = data[i:i + mss]
            self._emit(out, Segment(conn.client.host, leg.backend.host, conn.client.port,
                                    leg.backend.port, leg.sent_upto, conn.ack, ACK | PSH,
                                    conn.window, payload=piece))
            leg.sent_upto = seq_add(leg.sent_upto, len(piece))
            self.counters["to_backend"] += 1

    def _flush_fin(self, conn: Conn, now: int, out: list[Action]) -> None:
        """Forward the client's FIN once every byte before it went to the leg."""
        leg = conn.leg
        if leg is None:
            # closed without ever completing a request: no backend to tell
            self.counters["no_request_fin"] += 1
            self._reset_client(conn, out)
            return
        if conn.pending and conn.remaining == 0:
            # an incomplete request before the FIN can never be decided: it goes where
            # the connection already goes, and that backend answers the truncated request
            conn.remaining = -1
            self._pump(conn, now, out)
        if conn.pending or leg.state is not LegState.ESTABLISHED or leg.fin_sent:
            return
        self._emit(out, Segment(conn.client.host, leg.backend.host, conn.client.port,
                                leg.backend.port, leg.sent_upto, conn.ack, FIN | ACK,
                                conn.window))
        leg.fin_sent = True
        if conn.backend_fin:
            conn.closed_ns = now

    # ------------------------------------------------------------------ backend side

    def _backend(self, seg: Segment, client: Address, backend: Address, now: int,
                 out: list[Action]) -> None:
        found = self.legs.get((client, backend))
        if found is None:
            self._old_leg(seg, client, backend, out)
            return
        conn, leg = found
        conn.last_ns = now
        if seg.has(SYN):
            self._synack(conn, leg, seg, now, out)
            return
        if leg.state is not LegState.ESTABLISHED:
            self.counters["synack_bad"] += 1  # e.g. the backend refused the SYN (RST)
            if seg.has(RST) and seg.has(ACK) and seg.ack == leg.start_seq:
                # RFC 9293 3.10.7.3: in SYN-SENT only a reset that acknowledges our SYN
                # counts; another (an answer to a stale ACK of an earlier connection on
                # these ports) must not kill the new one
                self._reset_client(conn, out)
            return
        # the interface may hand us GRO-merged segments: resegment to the client's MSS
        self._emit_split(out, seg.with_(src=conn.vip.host, sport=conn.vip.port),
                         conn.info.mss)
        self.counters["to_client"] += 1
        if seg.has(RST):
            self.counters["rst_backend"] += 1
            self._drop(conn, out)
        elif seg.has(FIN) and not conn.backend_fin:
            self.counters["fin_backend"] += 1
            conn.backend_fin = True
            if conn.client_fin and leg.fin_sent:
                conn.closed_ns = now

    def _synack(self, conn: Conn, leg: Leg, seg: Segment, now: int, out: list[Action]) -> None:
        if not seg.has(ACK) or seg.ack != leg.start_seq or seg.seq != leg.base:
            self.counters["synack_bad"] += 1
            return
        if leg.state is LegState.ESTABLISHED:
            # our ACK (the released request) was lost: complete the handshake again; the
            # client's own retransmission brings the request back through us
            self.counters["synack_dup"] += 1
            self._emit(out, Segment(conn.client.host, leg.backend.host, conn.client.port,
                                    leg.backend.port, leg.start_seq, conn.ack, ACK,
                                    conn.window))
            return
        self.counters["synack_ok"] += 1
        leg.state = LegState.ESTABLISHED
        leg.mss = min(_mss_option(seg.options) or 536, conn.info.mss)
        held, leg.held = bytes(leg.held), bytearray()
        self._to_leg(conn, leg, held, out)
        if leg.mode is not OffloadMode.NONE:
            out.append(Offload(conn.client, conn.vip, leg.backend, leg.mode))
            conn.offloaded = True
            self.counters["offload"] += 1
        self._pump(conn, now, out)
        if conn.client_fin and self._alive(conn):
            self._flush_fin(conn, now, out)

    def _old_leg(self, seg: Segment, client: Address, backend: Address,
                 out: list[Action]) -> None:
        """A late packet of a leg that was reset: drop it, and reset the leg again
        (unless it is a RST itself) so the backend stops sending."""
        self.counters["old_leg_drop"] += 1
        if seg.has(RST) or (client, backend) not in self.old_legs:
            return
        self._emit(out, Segment(client.host, backend.host, client.port, backend.port,
                                seg.ack, 0, RST, 0))

    # ------------------------------------------------------------------ teardown

    def _close_leg(self, conn: Conn, leg: Leg, now: int, out: list[Action]) -> None:
        """Reset a leg the connection is leaving; its late packets are dropped."""
        if leg.state is LegState.ESTABLISHED:
            self._emit(out, Segment(conn.client.host, leg.backend.host, conn.client.port,
                                    leg.backend.port, leg.sent_upto, conn.ack, RST | ACK, 0))
        self.legs.pop((conn.client, leg.backend), None)
        self.old_legs[(conn.client, leg.backend)] = (leg.sent_upto, now)
        if conn.offloaded:
            out.append(Unoffload(conn.client, conn.vip))
            conn.offloaded = False
            self.counters["unoffload"] += 1
        conn.leg = None

    def _reset_client(self, conn: Conn, out: list[Action]) -> None:
        """Refuse the connection: RST to the client (and to the leg, if any)."""
        self._emit(out, Segment(conn.vip.host, conn.client.host, conn.vip.port,
                                conn.client.port, conn.ack, 0, RST, 0))
        leg = conn.leg
        if leg is not None and leg.state is LegState.ESTABLISHED:
            self._emit(out, Segment(conn.client.host, leg.backend.host, conn.client.port,
                                    leg.backend.port, leg.sent_upto, conn.ack, RST | ACK, 0))
        self._drop(conn, out)

    def _drop(self, conn: Conn, out: list[Action]) -> None:
        """Forget a connection and its legs; remove its offload entries."""
        if self.conns.pop((conn.client, conn.vip), None) is None:
            return
        if conn.leg is not None:
            self.legs.pop((conn.client, conn.leg.backend), None)
            conn.leg = None
        if conn.offloaded:
            out.append(Unoffload(conn.client, conn.vip))
            conn.offloaded = False
            self.counters["unoffload"] += 1
        conn.pending.clear()

    def _emit_split(self, out: list[Action], seg: Segment, mss: int) -> None:
        """Emit ``seg``, cut into MSS-sized segments (FIN/PSH stay on the last). The MSS
        counts the options too (RFC 6691): a timestamped segment carries 12 bytes less."""
        mss = max(64, mss - len(seg.options))
        if len(seg.payload) <= mss:
            self._emit(out, seg)
            return
        tail_flags = seg.flags & (FIN | PSH)
        data = seg.payload
        for i in range(0, len(data), mss):
            last = i + mss >= len(data)
            flags = seg.flags if last else seg.flags & ~tail_flags
            self._emit(out, seg.with_(seq=seq_add(seg.seq, i), flags=flags,
                                      payload=data[i:i + mss]))

    def _idle_limit(self, conn: Conn) -> int:
        if conn.offloaded:
            return max(self.config.idle_timeout_ns, self.config.offloaded_idle_timeout_ns)
        return self.config.idle_timeout_ns

    def _alive(self, conn: Conn) -> bool:
        return self.conns.get((conn.client, conn.vip)) is conn

    def _emit(self, out: list[Action], seg: Segment) -> None:
        out.append(Transmit(seg.encode()))


def _find_option(options: bytes, kind: int, length: int) -> int | None:
    """Offset of the first option ``kind`` of exactly ``length`` bytes, or None."""
    i = 0
    while i < len(options):
        k = options[i]
        if k == 0:
            break
        if k == 1:
            i += 1
            continue
        if i + 1 >= len(options) or options[i + 1] < 2:
            break
        if k == kind and options[i + 1] == length and i + length <= len(options):
            return i
        i += options[i + 1]
    return None


def _mss_option(options: bytes) -> int | None:
    """The MSS option of a SYN-ACK, if any."""
    at = _find_option(options, 2, 4)
    return None if at is None else int(struct.unpack_from("!H", options, at + 2)[0])


def _note_timestamps(conn: Conn, seg: Segment) -> None:
    """Keep the client's newest (TSval, TSecr): a new leg's forged SYN carries them, its
    TSecr being the last timestamp of ours the client accepted (RFC 7323 TS.Recent)."""
    at = _find_option(seg.options, option.TS_KIND, option.TS_LENGTH)
    if at is None:
        return
    val, ecr = struct.unpack_from("!II", seg.options, at + 2)
    if conn.ts is None or seq_diff(val, conn.ts[0]) >= 0:
        conn.ts = (val, ecr)
