"""The SYN cookie: golden vectors (Python and the C header), validation, rotation."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from miresga_core import cookie as c

ROOT = Path(__file__).resolve().parents[2]
VECTORS = tomllib.loads((ROOT / "tests/vectors/cookie.toml").read_text())


def _opt(v):
    return None if v == "none" else v


@pytest.mark.parametrize("vec", VECTORS["halfsiphash"], ids=lambda v: f"len{v['len']}")
def test_halfsiphash_official_vectors(vec):
    assert c.halfsiphash24(bytes(range(8)), bytes(range(vec["len"]))) == vec["hash"]


@pytest.mark.parametrize("vec", VECTORS["cookie"], ids=lambda v: v["description"])
def test_cookie_vectors_python(vec):
    got = c.encode(bytes.fromhex(vec["key"]), vec["client"], vec["client_port"], vec["vip"],
                   vec["vip_port"], vec["slot"], c.mss_class(_opt(vec["mss"])),
                   _opt(vec["wscale"]), vec["sack"])
    assert got == vec["cookie"], vec["description"]


def test_cookie_vectors_c_header(tmp_path):
    """native/xdp/switch_cookie.h (what the XDP switch runs) gives the same cookies."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler")
    exe = tmp_path / "cookie_vectors"
    subprocess.run([cc, "-O2", "-Wall", "-Werror", "-I", str(ROOT / "native/xdp"), "-o", str(exe),
                    str(ROOT / "native/xdp/tests/cookie_vectors.c")], check=True, timeout=60)
    lines = []
    for v in VECTORS["cookie"]:
        k0, k1 = c.key_words(bytes.fromhex(v["key"]))
        ws = _opt(v["wscale"])
        mss = _opt(v["mss"])
        lines.append(" ".join(str(x) for x in (
            k0, k1, int(c.ipaddress.IPv4Address(v["client"])),
            int(c.ipaddress.IPv4Address(v["vip"])), v["client_port"], v["vip_port"],
            v["slot"] & 0xFFFFFFFF, mss or 0, c.WSCALE_NONE if ws is None else min(ws, 14),
            int(v["sack"]))))
    out = subprocess.run([str(exe)], input="\n".join(lines) + "\n", capture_output=True,
                         text=True, check=True, timeout=10).stdout.split()
    assert [int(x, 16) for x in out] == [v["cookie"] for v in VECTORS["cookie"]]


KEY = bytes.fromhex("0001020304050607")
ARGS = ("10.77.1.1", 40000, "10.77.255.1", 80)


def test_validate_current_and_previous_slot_only():
    ck = c.encode(KEY, *ARGS, 1000, 3, 7, True)
    secrets = c.CookieSecrets(KEY)
    info = c.validate(secrets, ck, *ARGS, now_slot=1000)
    assert info == c.CookieInfo(1000, 1460, 7, True, False)
    assert c.validate(secrets, ck, *ARGS, now_slot=1001).slot == 1000
    assert c.validate(secrets, ck, *ARGS, now_slot=1002) is None
    assert c.validate(secrets, ck, *ARGS, now_slot=999) is None


def test_validate_rejects_other_tuple_and_flipped_bits():
    ck = c.encode(KEY, *ARGS, 1000, 3, 7, True)
    secrets = c.CookieSecrets(KEY)
    assert c.validate(secrets, ck, "10.77.1.2", 40000, "10.77.255.1", 80, 1000) is None
    assert c.validate(secrets, ck, "10.77.1.1", 40000, "10.77.255.1", 81, 1000) is None
    for bit in range(32):
        assert c.validate(secrets, ck ^ (1 << bit), *ARGS, now_slot=1000) is None, bit


def test_rotation_keeps_previous_secret_valid_then_drops_it():
    ck = c.encode(KEY, *ARGS, 1000, 0, None, False)
    s1 = c.CookieSecrets(KEY).rotate(bytes([9] * 8))
    info = c.validate(s1, ck, *ARGS, now_slot=1000)
    assert info is not None and info.previous_secret and info.wscale is None
    s2 = s1.rotate(bytes([1] * 8))
    assert c.validate(s2, ck, *ARGS, now_slot=1000) is None


def test_bad_inputs_are_refused_clearly():
    with pytest.raises(ValueError, match="8 bytes"):
        c.CookieSecrets(b"short")
    with pytest.raises(ValueError, match="MSS class"):
        c.encode(KEY, *ARGS, 1, 4, None, False)
    with pytest.raises(ValueError, match="negative"):
        c.encode(KEY, *ARGS, 1, 0, -1, False)


def test_clock_base_aligns_slot_boundaries():
    unix = (5000 << c.SLOT_SHIFT) + 12345
    mono = 10**15
    base_slot, base_ns = c.clock_base(mono, unix)
    for dt in (0, (1 << c.SLOT_SHIFT) - 12346, (1 << c.SLOT_SHIFT) - 12345, 10**12):
        assert base_slot + ((mono + dt - base_ns) >> c.SLOT_SHIFT) == c.slot_at(unix + dt)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 65535), st.integers(0, 2**32 - 1),
       st.integers(0, 2**24), st.integers(0, 3), st.one_of(st.none(), st.integers(0, 14)),
       st.booleans())
def test_roundtrip_any_tuple(client, port, vip, slot, mss, ws, sack):
    ck = c.encode(KEY, client, port, vip, 80, slot, mss, ws, sack)
    info = c.validate(c.CookieSecrets(KEY), ck, client, port, vip, 80, slot + 1)
    assert info is not None
    assert (info.mss, info.wscale, info.sack) == (c.MSS_CLASSES[mss], ws, sack)
