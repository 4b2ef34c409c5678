"""The sans-I/O front-end, packet by packet (ARCHITECTURE.md, splice protocol 2-8)."""

from __future__ import annotations

import pytest
from fe_world import (
    ACK,
    BLUE,
    FIN,
    GREEN,
    PINNED,
    PSH,
    RST,
    SYN,
    T0,
    VIP,
    Backend,
    Client,
    S,
    get,
    make_frontend,
    offloads,
    post,
    segs,
)

from miresga_core import cookie
from miresga_core.api import Address, OffloadMode
from miresga_core.frontend import packet as P
from miresga_core.frontend.packet import seq_add
from miresga_core.frontend.state import Offload, Unoffload
from miresga_core.wire import option


@pytest.fixture(params=["prototype", "c"])
def fe(registry, request):
    """Every packet test runs with the prototype decider and with the compiled rule
    program (C VM when built; the core falls back to the Python VM and logs it)."""
    return make_frontend(registry, prefer=request.param)


def open_leg(c: Client, data: bytes) -> tuple[Backend, list]:
    out = c.request(data)
    (syn,) = [s for s in segs(out) if s.has(SYN)]
    return Backend.from_syn(c, syn), out


def established(c: Client, data: bytes = get("/")) -> Backend:
    b, _ = open_leg(c, data)
    b.synack()
    return b


# ----------------------------------------------------------------------------- cookies


def test_valid_cookie_creates_state_invalid_is_dropped_and_counted(fe):
    c = Client(fe)
    assert c.send(ACK) == []
    assert len(fe.conns) == 1
    bad = Client(fe, addr=Address("10.0.1.6", 40001))
    bad.ack = seq_add(bad.ack, 1 << 10)  # wrong hash bits
    assert bad.request(get("/")) == []
    assert len(fe.conns) == 1 and fe.counters["cookie_bad"] == 1


def test_cookie_of_previous_slot_valid_two_slots_ago_not(fe):
    c = Client(fe)
    c.now += 1 << cookie.SLOT_SHIFT
    assert c.send(ACK) == [] and fe.counters["cookie_ok"] == 1
    late = Client(fe, addr=Address("10.0.1.7", 1))
    late.now += 2 << cookie.SLOT_SHIFT
    late.send(ACK)
    assert fe.counters["cookie_bad"] == 1 and len(fe.conns) == 1


def test_cookie_under_previous_secret_after_rotation(fe):
    c = Client(fe)
    fe.set_secrets(fe.secrets.rotate(bytes(8)))
    c.send(ACK)
    assert fe.counters["cookie_ok"] == 1
    fe.set_secrets(fe.secrets.rotate(bytes(range(8))))  # two rotations: the key is gone
    d = Client(fe, addr=Address("10.0.1.8", 2))
    d.send(ACK)
    assert fe.counters["cookie_bad"] == 1


def test_unknown_syn_rst_and_stray_backend_packets_get_no_state(fe):
    c = Client(fe)
    assert c.send(SYN, advance=False) == []
    assert c.send(RST | ACK, advance=False) == []
    stray = P.Segment(BLUE.host, c.addr.host, BLUE.port, c.addr.port, 1, 2, ACK).encode()
    assert fe.receive(stray, T0) == []
    assert fe.receive(b"\x45garbage", T0) == []
    assert not fe.conns and fe.counters["malformed"] == 1 and fe.counters["not_ours"] == 1


# ----------------------------------------------------------------------------- forged SYN


def test_request_buffered_across_segments_then_one_forged_syn(fe):
    c = Client(fe)
    req = get("/index.html", extra="User-Agent: t\r\n")
    first_seq = c.seq
    for piece in (req[:5], req[5:20]):
        assert c.request(piece) == []
    out = c.request(req[20:])
    (syn,) = segs(out)
    assert (syn.src, syn.sport, syn.dst, syn.dport) == (c.addr.host, c.addr.port,
                                                        BLUE.host, BLUE.port)
    assert syn.flags == SYN and syn.payload == b""
    assert syn.seq == seq_add(first_seq, -1)
    opt = option.verify(syn.options, (bytes(range(16)), None), saddr=syn.src,
                        daddr=syn.dst, sport=syn.sport, dport=syn.dport, seq=syn.seq)
    assert opt.seq_base == c.cookie_isn
    assert (opt.mss, opt.client_wscale, opt.switch_wscale, opt.sack_permitted) == (
        1460, 7, 7, True)
    assert offloads(out) == []


def test_forged_syn_carries_the_clients_timestamps_frozen_for_retransmissions(fe):
    """RFC 7323: the client's newest TSval and its TSecr (the last timestamp of ours it
    accepted: the agent continues the backend's timestamps from there) ride in the
    trailer after the Miresga option; a retransmitted SYN is the same bytes."""
    c = Client(fe, ts=(1000, 77))
    assert c.send(ACK) == []
    c.ts = (900, 50)  # older: reordered, not newer than what the front-end has
    assert c.request(get("/")[:5]) == []
    c.ts = (1005, 80)
    out = c.request(get("/")[5:])
    (syn,) = segs(out)
    miresga, ts = option.split_syn_options(syn.options)
    assert ts == (1005, 80) and len(syn.options) == 32
    option.verify(miresga, (bytes(range(16)), None), saddr=syn.src, daddr=syn.dst,
                  sport=syn.sport, dport=syn.dport, seq=syn.seq)
    c.ts = (2000, 99)
    c.send(ACK)
    assert [a.packet for a in fe.expire(T0 + S)] == [out[0].packet]


def test_forged_syn_has_no_timestamps_when_the_client_has_none(fe):
    c = Client(fe)
    _b, out = open_leg(c, get("/"))
    assert option.split_syn_options(segs(out)[0].options)[1] is None


def test_forged_syn_carries_no_wscale_no_sack_when_client_offered_none(fe):
    c = Client(fe, wscale=None, sack=False, mss=536)
    _b, _ = open_leg(c, get("/"))
    (syn,) = segs(c.log)
    opt, _tag = option.decode(syn.options)
    assert (opt.client_wscale, opt.sack_permitted, opt.mss) == (None, False, 536)


def test_forged_packets_are_valid_ipv4_tcp_for_scapy(fe):
    from scapy.layers.inet import IP, TCP
    c = Client(fe)
    _, out = open_leg(c, get("/"))
    raw = out[0].packet
    rebuilt = IP(raw)
    del rebuilt[IP].chksum, rebuilt[TCP].chksum
    assert bytes(IP(bytes(rebuilt))) == raw  # scapy computes the same checksums


# ----------------------------------------------------------------------------- release


def test_synack_releases_request_and_offloads(fe):
    c = Client(fe)
    req = post("/upload", b"x" * 3000)
    b, _ = open_leg(c, req)
    out = b.synack(mss=1000)
    data = segs(out)
    assert [len(s.payload) for s in data] == [1000] * (len(req) // 1000) + [len(req) % 1000]
    assert b"".join(s.payload for s in data) == req
    assert data[0].seq == b.start and all(s.ack == c.ack for s in data)
    assert all((s.dst, s.dport, s.src) == (BLUE.host, BLUE.port, c.addr.host) for s in data)
    assert offloads(out) == [Offload(c.addr, VIP, BLUE, OffloadMode.SPLICE)]


def test_synack_with_wrong_numbers_is_ignored(fe):
    c = Client(fe)
    b, _ = open_leg(c, get("/"))
    bad = b.seg(SYN | ACK, seq=b.base, ack=seq_add(b.start, 5))
    assert fe.receive(bad, T0) == [] and fe.counters["synack_bad"] == 1
    assert len(segs(b.synack())) == 1


def test_backend_packets_before_offload_reach_client_from_vip(fe):
    c = Client(fe)
    b = established(c)
    (s,) = segs(b.respond(b"HTTP/1.1 200 OK\r\n"))
    assert (s.src, s.sport, s.dst, s.dport) == (VIP.host, VIP.port, c.addr.host, c.addr.port)
    assert s.payload == b"HTTP/1.1 200 OK\r\n" and s.seq == seq_add(c.cookie_isn, 1)


def test_client_pure_ack_goes_to_established_leg(fe):
    c = Client(fe)
    b = established(c)
    b.respond(b"abc")
    c.ack = seq_add(c.ack, 3)
    (s,) = segs(c.send(ACK))
    assert (s.dst, s.dport, s.ack) == (BLUE.host, BLUE.port, c.ack)


# ----------------------------------------------------------------------------- keep-alive


def test_keepalive_same_backend_is_forwarded_without_new_leg(fe):
    c = Client(fe)
    b = established(c)
    b.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    c.ack = seq_add(c.ack, b.sent)
    start = c.seq
    out = c.request(get("/again"))
    (s,) = segs(out)
    assert s.payload == get("/again") and s.seq == start and not s.has(SYN)
    assert fe.counters["leg_opened"] == 1 and offloads(out) == []


def test_keepalive_other_backend_resets_old_leg_and_forges_at_current_points(fe):
    c = Client(fe)
    blue = established(c)
    blue_end = seq_add(blue.start, len(get("/")))
    blue.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    c.ack = seq_add(c.ack, blue.sent)
    start = c.seq
    out = c.request(get("/green/x"))
    rst, syn = segs(out)
    assert rst.has(RST) and (rst.dst, rst.dport) == (BLUE.host, BLUE.port)
    assert rst.seq == blue_end
    assert offloads(out) == [Unoffload(c.addr, VIP)]
    assert (syn.dst, syn.dport, syn.seq) == (GREEN.host, GREEN.port, seq_add(start, -1))
    green = Backend.from_syn(c, syn)
    assert green.base == seq_add(c.ack, -1)  # the client's current ack point
    out = green.synack()
    assert [s.payload for s in segs(out)] == [get("/green/x")]
    assert offloads(out) == [Offload(c.addr, VIP, GREEN, OffloadMode.SPLICE)]
    # a late packet of the old leg is dropped (never reaches the client) and reset again
    late = blue.respond(b"late")
    (again,) = segs(late)
    assert again.has(RST) and again.dst == BLUE.host
    assert fe.counters["old_leg_drop"] == 1 and fe.counters["leg_switched"] == 1


class Alternating:
    """A round-robin's effect: every request to pool blue, the two backends in turn;
    paths under /slow/ ask for offload mode none (another mode, the same pool)."""

    def __init__(self) -> None:
        self.n = 0

    def decide(self, data, client, now):
        from miresga_core.api import NeedMore
        from miresga_core.frontend.decider import Decision

        end = data.find(b"\r\n\r\n")
        if end < 0:
            return NeedMore()
        self.n += 1
        mode = OffloadMode.NONE if data.startswith(b"GET /slow/") else OffloadMode.SPLICE
        return Decision((BLUE, OTHER_BLUE)[self.n % 2], mode, end + 4, "blue")


OTHER_BLUE = Address("10.0.2.9", 8080)


def _second_request(affinity: bool, path: str):
    from bench.fe_world import COOKIE_KEY, frontend_config
    from miresga_core.frontend.machine import Frontend

    fe = Frontend(frontend_config(pool_affinity=affinity), Alternating(),
                  cookie.CookieSecrets(COOKIE_KEY))
    c = Client(fe)
    first = established(c)
    first.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    c.ack = seq_add(c.ack, first.sent)
    return fe, first, c.request(get(path))


def test_pool_affinity_keeps_the_leg_for_the_same_pool():
    fe, first, out = _second_request(True, "/again")
    (s,) = segs(out)  # the request on the open leg: no RST, no forged SYN
    assert (s.dst, s.dport) == (first.addr.host, first.addr.port)
    assert s.payload == get("/again") and not s.has(SYN) and offloads(out) == []
    assert fe.counters["leg_kept"] == 1 and fe.counters["leg_switched"] == 0


def test_without_pool_affinity_each_request_follows_the_policy():
    fe, first, out = _second_request(False, "/again")
    rst, syn = segs(out)
    assert rst.has(RST) and rst.dst == first.addr.host
    assert syn.has(SYN) and syn.dst != first.addr.host
    assert fe.counters["leg_kept"] == 0 and fe.counters["leg_switched"] == 1


def test_pool_affinity_still_switches_for_another_offload_mode():
    fe, _, out = _second_request(True, "/slow/x")
    assert [s.has(RST) for s in segs(out)] == [True, False]
    assert fe.counters["leg_kept"] == 0 and fe.counters["leg_switched"] == 1


def test_pipelined_requests_in_one_segment_stay_on_one_backend(fe):
    c = Client(fe)
    b, out = open_leg(c, get("/a") + get("/green/b") + get("/c"))
    assert len(segs(out)) == 1  # one SYN only
    out = b.synack()
    assert b"".join(s.payload for s in segs(out)) == get("/a") + get("/green/b") + get("/c")
    assert fe.counters["pipelined_kept"] == 1 and fe.counters["requests"] == 3


def test_request_before_any_response_byte_is_pipelined(fe):
    c = Client(fe)
    b = established(c)
    out = c.request(get("/green/now"))  # ack unchanged: the response has not arrived
    (s,) = segs(out)
    assert (s.dst, s.payload) == (BLUE.host, get("/green/now"))
    assert fe.counters["pipelined_kept"] == 1 and b.addr == BLUE


def test_pin_and_none_modes(fe):
    c = Client(fe)
    b, _ = open_leg(c, get("/ws/chat", extra="Upgrade: websocket\r\nConnection: Upgrade\r\n"))
    assert b.addr == PINNED
    assert offloads(b.synack()) == [Offload(c.addr, VIP, PINNED, OffloadMode.PIN)]
    d = Client(fe, addr=Address("10.0.1.9", 3))
    b2, _ = open_leg(d, get("/slow"))
    assert offloads(b2.synack()) == []  # offload "none": every byte passes the front-end
    assert segs(b2.respond(b"resp"))[0].src == VIP.host


def test_body_split_across_segments_follows_the_request(fe):
    c = Client(fe)
    req = post("/p", b"A" * 100)
    b, _ = open_leg(c, req[:60])
    b.synack()
    out = c.request(req[60:])
    assert b"".join(s.payload for s in segs(out)) == req[60:]
    assert fe.counters["requests"] == 1


# ----------------------------------------------------------------------------- FIN / RST


def test_half_close_fin_forwarded_after_request_and_response_still_flows(fe):
    c = Client(fe)
    b, _ = open_leg(c, get("/"))
    out = c.send(ACK | FIN)  # FIN while the leg is still opening: held
    assert segs(out) == []
    out = b.synack()
    data, fin = segs(out)
    assert fin.has(FIN) and fin.seq == seq_add(data.seq, len(data.payload))
    (resp,) = segs(b.respond(b"body"))
    assert resp.payload == b"body" and resp.dst == c.addr.host
    (bfin,) = segs(b.respond(b"", flags=ACK | FIN))
    assert bfin.has(FIN) and bfin.src == VIP.host
    assert fe.expire(c.now + S) == []  # grace period
    assert offloads(fe.expire(c.now + 3 * S)) == [Unoffload(c.addr, VIP)]
    assert not fe.conns and not fe.legs


def test_fin_without_request_resets_client(fe):
    c = Client(fe)
    c.send(ACK)
    (rst,) = segs(c.send(ACK | FIN))
    assert rst.has(RST) and rst.dst == c.addr.host and not fe.conns


@pytest.mark.parametrize("side", ["client", "backend"])
def test_rst_from_either_side_tears_down_at_once(fe, side):
    c = Client(fe)
    b = established(c)
    if side == "client":
        out = c.send(RST | ACK, advance=False)
        (s,) = segs(out)
        assert s.has(RST) and s.dst == BLUE.host
    else:
        out = b.rst()
        (s,) = segs(out)
        assert s.has(RST) and (s.src, s.dst) == (VIP.host, c.addr.host)
    assert offloads(out) == [Unoffload(c.addr, VIP)]
    assert not fe.conns and not fe.legs


def test_backend_refusing_the_syn_resets_client(fe):
    c = Client(fe)
    b, _ = open_leg(c, get("/"))
    out = fe.receive(b.seg(RST | ACK, seq=0), T0)
    (s,) = segs(out)
    assert s.has(RST) and s.dst == c.addr.host and not fe.conns


@pytest.mark.parametrize("flags, ack_off", [(RST, 0), (RST | ACK, 7)])
def test_reset_not_acknowledging_the_forged_syn_is_ignored(fe, flags, ack_off):
    """A backend's answer to a stale ACK on the same ports (RST, no ACK) or a reset with
    another ack does not end the new leg: only a refusal of our SYN does."""
    c = Client(fe)
    b, _ = open_leg(c, get("/"))
    assert segs(fe.receive(b.seg(flags, seq=0, ack=seq_add(b.start, ack_off)), T0)) == []
    assert fe.conns and fe.counters["synack_bad"] == 1
    out = b.synack()
    assert [s.payload for s in segs(out)] == [get("/")]


# ----------------------------------------------------------------------------- retransmission


def test_lost_forged_syn_is_resent_with_backoff_then_given_up(fe):
    c = Client(fe)
    _, out = open_leg(c, get("/"))
    syn = out[0].packet
    assert fe.next_deadline() == T0 + S
    assert fe.expire(T0 + S - 1) == []
    assert [a.packet for a in fe.expire(T0 + S)] == [syn]  # identical: agent sees a retransmit
    assert fe.expire(T0 + 2 * S) == []  # backed off to 2 s
    assert [a.packet for a in fe.expire(T0 + 3 * S)] == [syn]
    fe.expire(T0 + 7 * S)
    fe.expire(T0 + 15 * S)
    (rst,) = segs(fe.expire(T0 + 31 * S))
    assert rst.has(RST) and rst.dst == c.addr.host and not fe.conns
    assert fe.counters["syn_retransmit"] == 4 and fe.counters["syn_gave_up"] == 1


def test_duplicate_request_does_not_create_a_second_leg(fe):
    c = Client(fe)
    start = c.seq
    b, _ = open_leg(c, get("/"))
    assert segs(c.request(get("/"), seq=start)) == []  # client retransmits while opening
    b.synack()
    (again,) = segs(c.request(get("/"), seq=start))  # request lost on the way: resent
    assert again.payload == get("/") and again.dst == BLUE.host and again.seq == start
    assert fe.counters["leg_opened"] == 1 and fe.counters["syn_sent"] == 1


def test_duplicate_synack_gets_an_ack_not_a_second_offload(fe):
    c = Client(fe)
    b = established(c)
    out = b.synack()
    (ack,) = segs(out)
    assert ack.flags == ACK and ack.seq == b.start and offloads(out) == []


def test_out_of_order_segment_dropped_and_counted(fe):
    c = Client(fe)
    req = get("/")
    c.send(ACK)  # the handshake's ACK fixes where the stream starts
    assert c.request(req[10:], seq=seq_add(c.seq, 10)) == []
    assert fe.counters["out_of_order"] == 1
    c.request(req[:10])
    assert fe.conns[(c.addr, VIP)].pending == bytearray(req[:10])


def test_overlapping_retransmission_with_new_bytes(fe):
    c = Client(fe)
    req = get("/overlap")
    start = c.seq
    c.request(req[:10])
    out = c.request(req, seq=start)  # resends the 10 bytes plus the rest
    c.seq = seq_add(start, len(req))
    (syn,) = segs(out)
    b = Backend.from_syn(c, syn)
    assert b"".join(s.payload for s in segs(b.synack())) == req


# ----------------------------------------------------------------------------- refusals, expiry


def test_bad_request_and_oversized_head_reset_the_client(registry):
    fe = make_frontend(registry, max_head=100)
    c = Client(fe)
    (rst,) = segs(c.request(b"NOT HTTP AT ALL\r\n\r\n"))
    assert rst.has(RST) and fe.counters["rejected"] == 1 and not fe.conns
    d = Client(fe, addr=Address("10.0.1.10", 4))
    (rst,) = segs(d.request(b"GET / HTTP/1.1\r\nX: " + b"a" * 200))
    assert rst.has(RST) and fe.counters["head_too_big"] == 1 and not fe.conns


def test_idle_connection_expires_and_unoffloads(registry):
    fe = make_frontend(registry, idle_timeout_ns=10 * S, offloaded_idle_timeout_ns=100 * S)
    c = Client(fe)
    established(c)  # offloaded: its responses may flow without us seeing a packet
    assert fe.next_deadline() == T0 + 100 * S
    assert fe.expire(T0 + 10 * S) == []
    assert offloads(fe.expire(T0 + 100 * S)) == [Unoffload(c.addr, VIP)]
    assert not fe.conns and fe.counters["expired"] == 1
    d = Client(fe, addr=Address("10.0.1.11", 5))
    d.now = T0 + 100 * S
    d.request(get("/"))  # not offloaded (still opening): the short timeout
    fe.expire(T0 + 110 * S - 1)
    assert fe.conns
    fe.expire(T0 + 110 * S)
    assert not fe.conns


def test_many_clients_are_independent(fe):
    clients = [Client(fe, addr=Address("10.0.1.20", 1000 + i), isn=i * 7919) for i in range(20)]
    for i, c in enumerate(clients):
        b, _ = open_leg(c, get("/green/" if i % 2 else "/"))
        assert b.addr == (GREEN if i % 2 else BLUE)
        assert b.synack()
    assert len(fe.conns) == 20 and len(fe.legs) == 20
    for c in clients:
        c.send(RST | ACK, advance=False)
    assert not fe.conns and not fe.legs


def test_oversized_backend_segment_is_cut_to_client_mss(fe):
    c = Client(fe, mss=1460)
    b = established(c)
    out = b.respond(b"z" * 4000, flags=ACK | PSH | FIN)
    parts = segs(out)
    assert [len(s.payload) for s in parts] == [1460, 1460, 1080]
    assert [s.flags & (FIN | PSH) for s in parts] == [0, 0, FIN | PSH]
    assert parts[1].seq == seq_add(parts[0].seq, 1460)


def test_cut_of_a_timestamped_segment_leaves_room_for_its_options(fe):
    """RFC 6691: the MSS bounds payload + options; 12 option bytes, 1448 payload."""
    c = Client(fe, mss=1460)
    b = established(c)
    ts = option.ts_trailer(5, 6)
    out = fe.receive(b.seg(ACK | PSH, b"z" * 3000, options=ts), c.now)
    parts = segs(out)
    assert [len(s.payload) for s in parts] == [1448, 1448, 104]
    assert all(s.options == ts for s in parts)


@pytest.mark.parametrize("later", [1, 1 << cookie.SLOT_SHIFT])
def test_client_port_reused_during_close_grace_is_a_new_connection(fe, later):
    """Same slot: the new connection has the very same cookie; next slot: another one."""
    c = Client(fe)
    b = established(c)
    c.send(ACK | FIN)
    b.respond(b"", flags=ACK | FIN)
    old = fe.conns[(c.addr, VIP)]
    assert old.closed_ns is not None  # in its grace period
    c2 = Client(fe, addr=c.addr, isn=0x12345678, now=c.now + later)
    assert (c2.cookie_isn == c.cookie_isn) == (later == 1)
    out = c2.request(get("/green/again"))
    assert fe.counters["reincarnated"] == 1
    (syn,) = [s for s in segs(out) if s.has(SYN)]
    assert Backend.from_syn(c2, syn).base == c2.cookie_isn
    assert syn.seq == c2.isn and (syn.dst, syn.dport) == (GREEN.host, GREEN.port)
    assert fe.conns[(c.addr, VIP)] is not old


def test_reordered_segment_of_a_live_connection_is_not_a_new_one(fe):
    c = Client(fe)
    c.send(ACK)
    req = post("/p", b"x" * 3000)
    assert c.request(req[1000:], seq=seq_add(c.seq, 1000)) == []  # ahead: reordering
    c.request(req[:1000], advance=False)
    assert fe.counters["reincarnated"] == 0 and fe.counters["out_of_order"] == 1


def test_incomplete_request_then_fin(fe):
    """No leg yet: the client is reset. A leg exists: the partial request and the FIN go
    to it (the backend answers the truncated request), the connection closes normally."""
    c = Client(fe)
    c.request(b"GET / HTT")
    (rst,) = segs(c.send(ACK | FIN))
    assert rst.has(RST) and not fe.conns
    d = Client(fe, addr=Address("10.0.1.12", 6))
    b = established(d)
    b.respond(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    d.ack = seq_add(d.ack, b.sent)
    assert segs(d.request(b"GET /green/x HT")) == []  # undecided: held
    data, fin = segs(d.send(ACK | FIN))
    assert (data.dst, data.payload) == (BLUE.host, b"GET /green/x HT")
    assert fin.has(FIN) and fin.seq == seq_add(data.seq, len(data.payload))
