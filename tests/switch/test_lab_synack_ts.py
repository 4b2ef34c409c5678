"""A real Linux client through the XDP switch negotiates TCP timestamps (RFC 7323): the
kernel accepts the cookie SYN-ACK's TS option (TSecr echoing its own TSval passes its
tcp_ts_bad check) and turns timestamps on for the connection; with timestamps off in the
client, the same connect() gets a connection without them.

Own namespace prefix, so it never collides with the shared lab suites' namespaces."""

from __future__ import annotations

import socket
import subprocess

import pytest

from miresga_core.lab import Lab, LabSpec, in_netns

pytestmark = [pytest.mark.root, pytest.mark.netns]

PREFIX = "mts-"
TCPI_OPTIONS = 5  # byte offset of tcpi_options in struct tcp_info (linux/tcp.h)
TCPI_OPT_TIMESTAMPS = 1


def _connect_options(vip: str, port: int) -> int:
    """connect() to the VIP (answered by the switch alone) and return tcpi_options."""
    with socket.socket() as s:
        s.settimeout(5)
        s.connect((vip, port))
        info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        return info[TCPI_OPTIONS]


def _set_timestamps(ns: str, on: bool) -> None:
    subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw",
                    f"net.ipv4.tcp_timestamps={int(on)}"], check=True)


def test_linux_client_negotiates_timestamps_through_the_switch():
    spec = LabSpec(prefix=PREFIX, clients=1, frontends=1, backends=0)
    with Lab(spec) as lab:
        vip, vport = spec.vips[0]
        client_ns = lab.client().ns
        _set_timestamps(client_ns, True)
        with_ts = in_netns(client_ns, _connect_options, vip, vport)
        _set_timestamps(client_ns, False)
        without_ts = in_netns(client_ns, _connect_options, vip, vport)
        sw = lab.switch()
        try:
            counters = sw.counters()
        finally:
            sw.close()
    assert with_ts & TCPI_OPT_TIMESTAMPS, "timestamps not negotiated with the switch"
    assert not without_ts & TCPI_OPT_TIMESTAMPS
    assert counters["synack"][0] >= 2 and counters["synack_ts"][0] >= 1
