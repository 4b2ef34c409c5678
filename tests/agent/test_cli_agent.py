"""``miresga agent``: argument wiring, secret files, privileges, attach/status/detach."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyroute2 import IPRoute, NetNS, netns

from miresga_core.agent.maps import read_secret_file
from miresga_core.bpf.build import REPO_ROOT
from miresga_core.cli_agent import add_parser
from miresga_core.errors import MiresgaError

KEY_HEX = "00112233445566778899aabbccddeeff"


def cli(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([*prefix, sys.executable, "-m", "miresga_core.cli_agent", *args],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def secret(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    p = tmp_path / "key"
    p.write_text(text)
    p.chmod(mode)
    return p


def test_add_parser_registers_agent() -> None:
    parser = argparse.ArgumentParser(prog="miresga")
    add_parser(parser.add_subparsers(dest="cmd"))
    args = parser.parse_args(["agent", "--iface", "eth0", "--secret-file", "k",
                              "--mode", "generic"])
    assert args.cmd == "agent" and args.iface == "eth0" and args.mode == "generic"
    assert callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["agent", "--iface", "x", "--status", "--detach"])


def test_secret_file_formats(tmp_path: Path) -> None:
    assert read_secret_file(secret(tmp_path, KEY_HEX + "\n")) == (bytes.fromhex(KEY_HEX), None)
    two = read_secret_file(secret(tmp_path, f"# rotated\n-\n{KEY_HEX}  # new\n"))
    assert two == (None, bytes.fromhex(KEY_HEX))
    for text, msg in [("", "want 1 or 2 keys"), ("abc\n", "not 32 hex digits"),
                      ("-\n-\n", "no key set"), ("a\nb\nc\n", "want 1 or 2 keys")]:
        with pytest.raises(MiresgaError, match=msg):
            read_secret_file(secret(tmp_path, text))
    with pytest.raises(MiresgaError, match="chmod 600"):
        read_secret_file(secret(tmp_path, KEY_HEX, 0o644))
    with pytest.raises(MiresgaError, match="No such file"):
        read_secret_file(tmp_path / "absent")


@pytest.mark.root
def test_refuses_without_privileges() -> None:
    # root with every capability dropped from the bounding set has CapEff = 0 after exec
    proc = cli("--iface", "lo", "--status",
               prefix=("setpriv", "--bounding-set=-all", "--inh-caps=-all"))
    assert proc.returncode == 1
    assert "needs root (or CAP_BPF + CAP_NET_ADMIN)" in proc.stderr


@pytest.fixture
def veth_ns() -> Iterator[tuple[str, str]]:
    ns, ifname = f"mra-c{os.getpid() & 0xFFFF:04x}", f"mra-c{os.getpid() & 0xFFFF:04x}"
    netns.create(ns)
    try:
        with IPRoute() as ipr:
            ipr.link("add", ifname=ifname, kind="veth", peer={"ifname": ifname + "p"})
            for name in (ifname, ifname + "p"):
                ipr.link("set", index=ipr.link_lookup(ifname=name)[0], net_ns_fd=ns)
        with NetNS(ns) as n:
            for name in (ifname, ifname + "p"):
                n.link("set", index=n.link_lookup(ifname=name)[0], state="up")
        yield ns, ifname
    finally:
        with contextlib.suppress(Exception):
            netns.remove(ns)


@pytest.mark.root
@pytest.mark.netns
def test_attach_status_reattach_detach(tmp_path: Path, veth_ns: tuple[str, str]) -> None:
    ns, ifname = veth_ns
    key = secret(tmp_path, KEY_HEX)
    base = ("--netns", ns, "--iface", ifname)
    try:
        first = cli(*base, "--secret-file", str(key), "--json")
        assert first.returncode == 0, first.stderr
        st = json.loads(first.stdout)
        assert st["attached"] and st["xdp_mode"] == "native"
        assert st["config"]["key_slots"] == [0]
        # plant a flow in the pinned map; re-attaching must keep it (maps are reused)
        from miresga_core.agent.maps import AgentMaps

        maps = AgentMaps.from_pins(Path(f"/sys/fs/bpf/miresga/{ifname}"))
        try:
            now = time.monotonic_ns()  # the clock of bpf_ktime_get_ns
            maps.put_flow("10.1.1.1", 1000, "10.2.2.2", 80, seq_base=42, last_ns=now)
            maps.put_flow("10.1.1.1", 1001, "10.2.2.2", 80, seq_base=43, last_ns=1)
        finally:
            maps.close()
        again = cli(*base, "--secret-file", str(key), "--mode", "generic", "--json")
        assert again.returncode == 0, again.stderr
        st = json.loads(cli(*base, "--status", "--json").stdout)
        assert st["xdp_mode"] == "generic"
        assert sorted(f["seq_base"] for f in st["flows"]) == [42, 43]
        swept = cli(*base, "--gc")  # the flow idle since boot goes, the fresh one stays
        assert swept.returncode == 0 and "removed 0 closed and 1 idle" in swept.stdout
        text = cli(*base, "--status")
        assert "attached (XDP generic" in text.stdout and "flows: 1" in text.stdout
    finally:
        gone = cli(*base, "--detach")
    assert gone.returncode == 0 and "detached" in gone.stdout
    st = json.loads(cli(*base, "--status", "--json").stdout)
    assert not st["attached"] and st["xdp_prog_id"] == 0 and st["tc_prog_id"] == 0
    assert not Path(f"/sys/fs/bpf/miresga/{ifname}").exists()
    assert "was not attached" in cli(*base, "--detach").stdout


@pytest.mark.root
def test_attach_needs_secret_and_interface(tmp_path: Path) -> None:
    no_secret = cli("--iface", "lo")
    assert no_secret.returncode == 1 and "--secret-file is required" in no_secret.stderr
    no_iface = cli("--iface", "mra-nosuch", "--secret-file", str(secret(tmp_path, KEY_HEX)))
    assert no_iface.returncode == 1 and "no network interface 'mra-nosuch'" in no_iface.stderr


@pytest.mark.root
@pytest.mark.netns
def test_reattach_refuses_maps_of_another_layout(tmp_path: Path,
                                                 veth_ns: tuple[str, str]) -> None:
    # maps pinned by an agent with another struct flow (e.g. before ts_base/ts_delta):
    # stand one in by pinning the config array (56-byte values) as the flows map
    from miresga_core.bpf import Map

    ns, ifname = veth_ns
    key = secret(tmp_path, KEY_HEX)
    base = ("--netns", ns, "--iface", ifname)
    pins = Path(f"/sys/fs/bpf/miresga/{ifname}")
    try:
        assert cli(*base, "--secret-file", str(key)).returncode == 0
        config = Map.from_pinned(pins / "config")
        try:
            (pins / "flows").unlink()
            config.pin(pins / "flows")
        finally:
            config.close()
        again = cli(*base, "--secret-file", str(key))
        assert again.returncode == 1, again.stdout
        assert "another agent version (flow 56 B" in again.stderr and "detach first" in \
            again.stderr, again.stderr
    finally:
        assert cli(*base, "--detach").returncode == 0
    assert not pins.exists()
