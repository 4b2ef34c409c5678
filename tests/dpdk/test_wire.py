"""The C front-end's pure parts against their Python definitions: cookie (golden vectors),
Miresga option + tag, segment parse/build with checksums, and the generated header."""

from __future__ import annotations

import ctypes
import ipaddress
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miresga_core import cookie
from miresga_core.dpdk import gen_c
from miresga_core.frontend import packet as P
from miresga_core.wire import option

ROOT = Path(__file__).resolve().parents[2]
VECTORS = tomllib.loads((ROOT / "tests/vectors/cookie.toml").read_text())["cookie"]
u32, u16 = ctypes.c_uint32, ctypes.c_uint16


def _ip(s: str) -> int:
    return int(ipaddress.IPv4Address(s))


def test_counters_header_is_fresh():
    assert gen_c.HEADER.read_text() == gen_c.render(), \
        "native/dpdk/fe/fe_counters.h is stale: python3 -m miresga_core.dpdk.gen_c"


class _Info(ctypes.Structure):
    _fields_ = [("slot", u32), ("mss", u16), ("wscale", ctypes.c_int8), ("sack", ctypes.c_uint8),
                ("previous_secret", ctypes.c_uint8)]


@pytest.mark.parametrize("vec", VECTORS, ids=[v["description"] for v in VECTORS])
def test_cookie_golden_vectors(libmfe, vec):
    lib = libmfe
    lib.fe_cookie_encode.restype = u32
    lib.fe_cookie_encode.argtypes = [ctypes.c_char_p, u32, u16, u32, u16, ctypes.c_uint64, u32,
                                     ctypes.c_int, ctypes.c_int]
    lib.fe_mss_class.restype = u32
    key = bytes.fromhex(vec["key"])
    mss = 0 if vec["mss"] == "none" else vec["mss"]
    ws = -1 if vec["wscale"] == "none" else vec["wscale"]
    cls = lib.fe_mss_class(u32(mss))
    got = lib.fe_cookie_encode(key, _ip(vec["client"]), vec["client_port"], _ip(vec["vip"]),
                               vec["vip_port"], vec["slot"], cls, ws, int(vec["sack"]))
    assert got == vec["cookie"]
    # and the front-end's check accepts it, in this slot and the next, with these fields
    lib.fe_cookie_validate.argtypes = [ctypes.c_char_p, ctypes.c_char_p, u32, u32, u16, u32,
                                       u16, ctypes.c_uint64, ctypes.POINTER(_Info)]
    for now_slot, ok in ((vec["slot"], 1), (vec["slot"] + 1, 1), (vec["slot"] + 2, 0)):
        info = _Info()
        r = lib.fe_cookie_validate(key, None, got, _ip(vec["client"]), vec["client_port"],
                                   _ip(vec["vip"]), vec["vip_port"], now_slot,
                                   ctypes.byref(info))
        assert r == ok
        want = cookie.validate(cookie.CookieSecrets(key), got, vec["client"],
                               vec["client_port"], vec["vip"], vec["vip_port"], now_slot)
        assert (want is not None) == bool(r)
        if r:
            assert (info.mss, info.sack) == (want.mss, want.sack)
            assert info.wscale == (-1 if want.wscale is None else want.wscale)
    bad = lib.fe_cookie_validate(key, None, got ^ 1, _ip(vec["client"]), vec["client_port"],
                                 _ip(vec["vip"]), vec["vip_port"], vec["slot"],
                                 ctypes.byref(_Info()))
    assert bad == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=16, max_size=16), st.integers(0, 2**32 - 1), st.integers(1, 65535),
       st.one_of(st.none(), st.integers(0, 14)), st.integers(0, 14), st.booleans(),
       st.integers(0, 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
       st.integers(0, 65535), st.integers(0, 65535), st.integers(0, 2**32 - 1))
def test_option_encode_matches_python(libmfe, key, base, mss, cws, sws, sack, slot, sa, da,
                                      sp, dp, seq):
    libmfe.fe_option_encode.argtypes = [ctypes.c_char_p, ctypes.c_char_p, u32, u16,
                                        ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                        ctypes.c_int, u32, u32, u16, u16, u32]
    out = ctypes.create_string_buffer(20)
    libmfe.fe_option_encode(out, key, base, mss, -1 if cws is None else cws, sws, int(sack),
                            slot, sa, da, sp, dp, seq)
    want = option.encode(option.MiresgaOption(base, mss, cws, sws, sack, slot), key=key,
                         saddr=str(ipaddress.IPv4Address(sa)),
                         daddr=str(ipaddress.IPv4Address(da)), sport=sp, dport=dp, seq=seq)
    assert out.raw == want


class _Seg(ctypes.Structure):
    _fields_ = [("src", u32), ("dst", u32), ("sport", u16), ("dport", u16), ("seq", u32),
                ("ack", u32), ("flags", ctypes.c_uint8), ("window", u16), ("ip_id", u16),
                ("ttl", ctypes.c_uint8), ("opts", ctypes.c_void_p), ("opts_len", u32),
                ("payload", ctypes.c_void_p), ("payload_len", u32)]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 65535),
       st.integers(0, 2**32 - 1), st.integers(0, 63), st.integers(0, 65535),
       st.integers(0, 10).map(lambda n: bytes(range(4 * n))), st.binary(max_size=1600),
       st.integers(0, 65535), st.integers(0, 255))
def test_segment_parse_encode_match_python(libmfe, sa, seq, port, ack, flags, win, opts,
                                           payload, ip_id, ttl):
    seg = P.Segment(str(ipaddress.IPv4Address(sa)), "10.0.0.100", port, 80, seq, ack, flags,
                    win, opts, payload, ip_id, ttl)
    raw = seg.encode()
    libmfe.fe_parse.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(_Seg),
                                ctypes.POINTER(ctypes.c_char_p)]
    libmfe.fe_encode.argtypes = [ctypes.POINTER(_Seg), ctypes.c_char_p, ctypes.c_size_t]
    s, why = _Seg(), ctypes.c_char_p()
    buf = ctypes.create_string_buffer(raw)
    assert libmfe.fe_parse(buf, len(raw), ctypes.byref(s), ctypes.byref(why)) == 0
    assert (s.src, s.seq, s.ack, s.flags, s.window, s.ip_id, s.ttl, s.opts_len,
            s.payload_len) == (sa, seq, ack, flags, win, ip_id, ttl, len(opts), len(payload))
    out = ctypes.create_string_buffer(70000)
    n = libmfe.fe_encode(ctypes.byref(s), out, 70000)
    assert out.raw[:n] == raw  # checksums included


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=90))
def test_parse_refuses_what_python_refuses(libmfe, data):
    libmfe.fe_parse.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(_Seg),
                                ctypes.POINTER(ctypes.c_char_p)]
    why = ctypes.c_char_p()
    r = libmfe.fe_parse(data, len(data), ctypes.byref(_Seg()), ctypes.byref(why))
    try:
        P.parse(data)
        ok = True
    except P.PacketError:
        ok = False
    assert (r == 0) == ok


@pytest.mark.parametrize(("line", "why"), [
    ("cookie 12", "cookie keys are 16 hex digits"),
    ("agent_key 2 " + "00" * 16 + " 1", "agent key"),
    ("vip 10.0.0.300 80 7 1460 /nonexistent", "bad address"),
    ("vip 10.0.0.1 80 7 1460 /nonexistent", "cannot read program"),
    ("backend 10.0.0.9 80 0 10.0.2.1 8080", "unknown VIP/pool"),
    ("frobnicate 1", "unknown line"),
])
def test_config_file_errors_name_the_line(libmfe, tmp_path, line, why):
    import subprocess

    from miresga_core.dpdk import build
    conf = tmp_path / "fe.conf"
    conf.write_text("cookie 0102030405060708\n" + line + "\n")
    (tmp_path / "t.bin").write_bytes(b"")
    r = subprocess.run([str(build.BUILD / "mfe_replay"), str(conf), str(tmp_path / "t.bin")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert f"{conf}:2: " in r.stderr and why in r.stderr, r.stderr


def test_bad_program_file_is_refused(libmfe, tmp_path):
    import subprocess

    from miresga_core.dpdk import build
    (tmp_path / "p.mvm").write_bytes(b"MVM1" + bytes(40))
    conf = tmp_path / "fe.conf"
    conf.write_text(f"cookie 0102030405060708\nvip 10.0.0.1 80 7 1460 {tmp_path / 'p.mvm'}\n")
    (tmp_path / "t.bin").write_bytes(b"")
    r = subprocess.run([str(build.BUILD / "mfe_replay"), str(conf), str(tmp_path / "t.bin")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and f"{conf}:2: " in r.stderr, r.stderr
