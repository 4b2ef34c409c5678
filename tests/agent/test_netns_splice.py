"""End to end: a real backend kernel and HTTP server behind the agent, a raw test peer in
the switch's place, 10 MB back byte-exact in the switch's sequence space.

Topology (netlab.py): peer namespace <-veth-> backend namespace. The backend runs
``python3 -m http.server`` and the agent (attached with the real CLI, ``--netns``). The
peer (switch_peer.py) forges the tagged SYN from the client's address, checks the SYN-ACK
arrives with seq = seq_base, sends GET, and receives the response with its own minimal TCP
receiver that ACKs (and SACKs) in the switch's space only. While the body flows, ``ss`` in
the backend namespace must show an ordinary established connection from the client.

Timestamps (test_splice_timestamps): the peer plays a client connection with timestamps
(form (b) SYN); the backend's kernel must negotiate them (``ts`` in ``ss -ti``) and every
segment it sends must reach the peer with a TSval in the switch's clock (switch_peer.py).

Variants: native XDP with the veth's TX checksum offload on (egress sees CHECKSUM_PARTIAL
skbs) and off (complete checksums, which the peer verifies on every segment), generic
XDP, and loss + reordering (SACK recovery through the agent's SACK translation). Loss and
reordering come from tc netem on the backend's egress where the kernel has netem; this
lab's kernel is built without it (CONFIG_NET_SCH_NETEM unset), so then the peer injects
them itself: it ignores ~1% of the data segments it receives and delivers ~10% late.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from netlab import B_ADDR, C_ADDR, Lab, in_netns, nsexec
from switch_peer import SwitchPeer, option_kinds

from miresga_core.bpf.build import REPO_ROOT

KEY = bytes.fromhex("5f1e2d3c4b5a69788796a5b4c3d2e1f0")
BODY_SIZE = 10 * 1024 * 1024
PORT = 8080


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, "-m", "miresga_core.cli_agent", *args],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture
def lab() -> Iterator[Lab]:
    lab = Lab(f"{os.getpid() & 0xFFFF:04x}")
    try:
        yield lab.up()
    finally:
        lab.close()


@pytest.fixture
def body(tmp_path: Path) -> bytes:
    data = os.urandom(BODY_SIZE)
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "blob").write_bytes(data)
    (tmp_path / "www" / "small").write_bytes(data[:65536])
    return data


@pytest.fixture
def server(lab: Lab, body: bytes, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        ["ip", "netns", "exec", lab.backend_ns, sys.executable, "-m", "http.server",
         str(PORT), "--bind", B_ADDR, "--directory", str(tmp_path / "www")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while f":{PORT}" not in nsexec(lab.backend_ns, "ss", "-Hltn"):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("http.server did not start listening")
            time.sleep(0.05)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "agent.key"
    path.write_text(KEY.hex() + "\n")
    path.chmod(0o600)
    return path



@contextlib.contextmanager
def _spliced(lab: Lab, secret: Path, mode: str, tx_csum: str,
             **peer_kw: object) -> Iterator[tuple[SwitchPeer, object]]:
    """The agent attached to the backend's interface and a switch peer on the other end,
    its forged SYN answered; detached (and its pins gone) afterwards."""
    if tx_csum == "off":
        nsexec(lab.backend_ns, "ethtool", "-K", lab.backend_if, "tx", "off")
    attached = cli("--netns", lab.backend_ns, "--iface", lab.backend_if, "--secret-file",
                   str(secret), "--mode", mode)
    assert attached.returncode == 0, attached.stderr
    sock = None
    try:
        with in_netns(lab.peer_ns):
            sock = SwitchPeer.open_socket(lab.peer_if)
        peer = SwitchPeer(sock, client=C_ADDR, backend=B_ADDR, backend_port=PORT,
                          peer_mac=lab.peer_mac, backend_mac=lab.backend_mac, key=KEY,
                          check_checksums=(tx_csum == "off"), **peer_kw)
        peer.bind(lab.peer_if)
        peer.handshake()
        yield peer, sock
    finally:
        if sock is not None:
            sock.close()
        detached = cli("--netns", lab.backend_ns, "--iface", lab.backend_if, "--detach")
        assert detached.returncode == 0, detached.stderr
        assert not Path(f"/sys/fs/bpf/miresga/{lab.backend_if}").exists()

VARIANTS = [
    pytest.param("native", "on", None, id="native-txcsum-on"),
    pytest.param("native", "off", None, id="native-txcsum-off"),
    pytest.param("generic", "on", None, id="generic-txcsum-on"),
    pytest.param("native", "on", "delay 2ms reorder 25% 50% loss 1%", id="native-lossy"),
]


@pytest.mark.root
@pytest.mark.netns
@pytest.mark.slow
@pytest.mark.parametrize(("mode", "tx_csum", "netem"), VARIANTS)
def test_splice_10mb(lab: Lab, server: object, body: bytes, secret: Path, mode: str,
                     tx_csum: str, netem: str | None) -> None:
    impair = {}
    if netem:
        added = subprocess.run(["ip", "netns", "exec", lab.backend_ns, "tc", "qdisc", "add",
                                "dev", lab.backend_if, "root", "netem", *netem.split()],
                               capture_output=True, text=True, timeout=20, check=False)
        if added.returncode != 0:  # no netem in this kernel: the peer impairs instead
            impair = {"loss": 0.01, "reorder": 0.1}
    with _spliced(lab, secret, mode, tx_csum, **impair) as (peer, sock):
        ss_lines: list[str] = []

        def ss_check() -> None:  # while the body flows
            ss_lines.append(nsexec(lab.backend_ns, "ss", "-tniH", "state", "established",
                                   f"( sport = :{PORT} )"))

        result = peer.fetch(b"GET /blob HTTP/1.1\r\nHost: backend\r\n\r\n",
                            expect_len=BODY_SIZE + 4096, timeout=120, on_progress=ss_check)
        head, _, got = result.data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200"), head[:100]
        assert len(got) == len(body)
        assert hashlib.sha256(got).hexdigest() == hashlib.sha256(body).hexdigest()
        assert peer.close(len(result.data)), "backend never ACKed our FIN"
        # the backend's kernel saw an ordinary connection from the client's address
        assert ss_lines and f"{C_ADDR}:{peer.cport}" in ss_lines[0], ss_lines
        # ... which negotiated what the option carried: the client's MSS and window scale
        # (ss prints wscale:<peer's>,<own>), and SACK (this ss does not print it; the
        # backend's SYN-ACK offered SACK_OK, so its SYN had it) - the rewrite reached the
        # kernel
        info = ss_lines[0]
        assert "wscale:7," in info and "mss:1400" in info, info
        assert 4 in option_kinds(peer.synack_options), peer.synack_options.hex()
        assert result.max_payload <= 1400, f"segment of {result.max_payload} B > client MSS"
        if tx_csum == "off":
            assert result.bad_checksums == 0, f"{result.bad_checksums} bad TCP checksums"
        # a second flow (new port, new seq_base) on the same agent: state is per flow
        second = SwitchPeer(sock, client=C_ADDR, backend=B_ADDR, backend_port=PORT,
                            peer_mac=lab.peer_mac, backend_mac=lab.backend_mac, key=KEY,
                            check_checksums=(tx_csum == "off"))
        assert second.base != peer.base
        second.handshake()
        small = second.fetch(b"GET /small HTTP/1.1\r\nHost: backend\r\n\r\n",
                             expect_len=70000, timeout=30)
        assert small.data.partition(b"\r\n\r\n")[2] == body[:65536]
        assert second.close(len(small.data))
        status = cli("--netns", lab.backend_ns, "--iface", lab.backend_if, "--status", "--json")
        assert status.returncode == 0, status.stderr
        st = json.loads(status.stdout)
        c = st["counters"]
        assert st["attached"] and st["xdp_mode"] == mode
        assert c["SYN_OK"] == 2 and c["SYNACK_LEARNED"] >= 2
        # tc egress sees the kernel's GSO skbs (segmentation happens after it), so count
        # bytes, not segments
        assert c["OUT_TRANSLATED"] > 0
        assert c["WIN_RESCALED"] > 0  # switch_ws 5 differs from the backend's scale
        assert c["FIN_IN"] >= 1 and c["FIN_OUT"] >= 1
        flows = [f for f in st["flows"] if f["client"] == f"{C_ADDR}:{peer.cport}"]
        assert flows and {"FIN_IN", "FIN_OUT", "DELTA"} <= set(flows[0]["flags"])
        assert flows[0]["bytes_out"] >= BODY_SIZE and flows[0]["closed_ns"] > 0
        if netem:
            assert result.out_of_order > 0, "no holes: loss/reordering not exercised"
            assert c["SACK_BLOCKS"] > 0 and flows[0]["sack_rewrites"] > 0
        print(f"\n{mode}/tx-csum {tx_csum}/impairment {impair or netem}: {len(got)} B in "
              f"{result.seconds:.2f} s, {result.segments} segments, "
              f"{result.out_of_order} out of order, {result.duplicate_segments} dup, "
              f"{result.sack_acks} SACK ACKs, {result.injected_losses} injected losses, "
              f"{result.injected_reorders} reorders, windows {min(result.windows)}.."
              f"{max(result.windows)}")


TS_VARIANTS = [
    pytest.param("native", "off", False, id="native-txcsum-off"),
    pytest.param("generic", "on", False, id="generic-txcsum-on"),
    pytest.param("native", "on", True, id="native-peer-lossy"),
]


@pytest.mark.root
@pytest.mark.netns
@pytest.mark.slow
@pytest.mark.parametrize(("mode", "tx_csum", "lossy"), TS_VARIANTS)
def test_splice_timestamps(lab: Lab, server: object, body: bytes, secret: Path, mode: str,
                           tx_csum: str, lossy: bool) -> None:
    impair = {"loss": 0.01, "reorder": 0.1} if lossy else {}
    with _spliced(lab, secret, mode, tx_csum, timestamps=True, **impair) as (peer, _sock):
        # the backend's kernel took the rewritten SYN and answered with timestamps; the
        # agent moved its TSval to ts_base and the TSecr echoes the SYN's TSval
        assert peer.synack_ts is not None, peer.synack_options.hex()
        assert peer.synack_ts[0] == peer.ts_base, (hex(peer.synack_ts[0]), hex(peer.ts_base))
        ss_lines: list[str] = []
        result = peer.fetch(
            b"GET /blob HTTP/1.1\r\nHost: backend\r\n\r\n", expect_len=BODY_SIZE + 4096,
            timeout=120, on_progress=lambda: ss_lines.append(nsexec(
                lab.backend_ns, "ss", "-tinoH", "state", "established", f"( sport = :{PORT} )")))
        got = result.data.partition(b"\r\n\r\n")[2]
        assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()
        assert peer.close(len(result.data)), "backend never ACKed our FIN"
        assert ss_lines and f"{C_ADDR}:{peer.cport}" in ss_lines[0], ss_lines
        # this ss prints the negotiated options (ts, sack) only with -o or -e; the kernel's
        # MSS is the client's 1400 less the 12 bytes every timestamped segment carries
        assert re.search(r"\bts\b", ss_lines[0]), f"timestamps not negotiated: {ss_lines[0]}"
        assert "mss:1388" in ss_lines[0], ss_lines[0]
        r = result
        assert r.ts_missing == 0 and r.ts_segments > r.segments, r
        assert (r.ts_behind_base, r.ts_backwards, r.ts_bad_echo) == (0, 0, 0), r
        assert 0 < r.ts_max_advance < 120_000, r.ts_max_advance  # the backend's ms clock
        if tx_csum == "off":
            assert r.bad_checksums == 0, f"{r.bad_checksums} bad TCP checksums"
        if lossy:
            assert r.out_of_order > 0 and r.sack_acks > 0, r
        st = json.loads(cli("--netns", lab.backend_ns, "--iface", lab.backend_if,
                            "--status", "--json").stdout)
        c = st["counters"]
        assert (c["SYN_TS"], c["SYNACK_NO_TS"]) == (1, 0), c
        assert c["TS_OUT_TRANSLATED"] > 0 and c["TS_IN_TRANSLATED"] > 0, c
        flows = [f for f in st["flows"] if f["client"] == f"{C_ADDR}:{peer.cport}"]
        assert flows and {"TS", "TS_DELTA"} <= set(flows[0]["flags"]), flows
        assert flows[0]["ts_base"] == peer.ts_base
        text = cli("--netns", lab.backend_ns, "--iface", lab.backend_if, "--status").stdout
        assert f"ts_delta {flows[0]['ts_delta']:#x}" in text, text
        print(f"\n{mode}/tx-csum {tx_csum}/lossy {lossy}: {len(got)} B in "
              f"{r.seconds:.2f} s, {r.ts_segments} segments with TS, clock +"
              f"{r.ts_max_advance} ticks, {r.sack_acks} SACK ACKs; {ss_lines[0].strip()}")


def test_peer_timestamp_parser() -> None:
    # the peer's timestamp checks rest on this parser: Linux's layout, a scan, malformed
    from switch_peer import timestamps_of

    assert timestamps_of(bytes([1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6])) == (5, 6)
    assert timestamps_of(bytes([2, 4, 5, 0xb4, 4, 2, 8, 10]) + bytes(8)) == (0, 0)
    assert timestamps_of(bytes([2, 4, 5, 0xb4, 1, 3, 3, 7])) is None
    assert timestamps_of(bytes([8, 10, 0, 0])) is None  # truncated


def test_peer_checksum_check_can_fail() -> None:
    # the peer's TCP checksum verification (used with TX offload off) is not vacuous
    from scapy.layers.inet import IP, TCP
    from switch_peer import tcp_checksum_ok

    raw = bytes(IP(src=C_ADDR, dst=B_ADDR) / TCP(sport=1, dport=2, seq=5) / b"payload")
    assert tcp_checksum_ok(raw[:20], raw[20:])
    bad = raw[:24] + bytes([raw[24] ^ 1]) + raw[25:]  # one bit of seq flipped
    assert not tcp_checksum_ok(bad[:20], bad[20:])
