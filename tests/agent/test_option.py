"""The Miresga SYN option in Python: SipHash vectors, encode/decode, tag checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miresga_core.wire import option
from miresga_core.wire.cstruct import CStruct, Field
from miresga_core.wire.option import MiresgaOption, OptionError
from miresga_core.wire.siphash import siphash24

KEY = bytes(range(16))
FLOW = {"saddr": "10.1.0.1", "daddr": "10.2.0.2", "sport": 40000, "dport": 80, "seq": 1234}


def test_siphash_paper_vectors() -> None:
    # Aumasson & Bernstein, "SipHash: a fast short-input PRF", appendix A
    assert siphash24(KEY, bytes(range(15))) == 0xA129CA6149BE45E5
    assert siphash24(KEY, b"") == 0x726FDB47DD0E0E31
    with pytest.raises(ValueError):
        siphash24(b"short", b"")


def test_encode_layout() -> None:
    opt = MiresgaOption(seq_base=0xDEADBEEF, mss=1460, client_wscale=7, switch_wscale=9,
                        sack_permitted=True)
    raw = option.encode(opt, key=KEY, **FLOW)
    assert len(raw) == option.LENGTH == 20
    assert raw[:4] == bytes([254, 20, 0x4D, 0x52])
    assert raw[4] == (1 << 4) | option.FLAG_SACK_OK | option.FLAG_WSCALE_OK
    assert raw[5] == 0x79
    assert raw[6:8] == (1460).to_bytes(2, "big")
    assert raw[8:12] == bytes.fromhex("deadbeef")


@given(base=st.integers(0, 2**32 - 1), mss=st.integers(1, 65535),
       cws=st.one_of(st.none(), st.integers(0, 14)), sws=st.integers(0, 14),
       sack=st.booleans(), slot=st.integers(0, 1))
def test_roundtrip(base: int, mss: int, cws: int | None, sws: int, sack: bool,
                   slot: int) -> None:
    opt = MiresgaOption(base, mss, cws, sws if cws is not None else 0, sack, slot)
    keys = (KEY, bytes(16)) if slot == 0 else (None, KEY)
    raw = option.encode(opt, key=KEY, **FLOW)
    assert option.verify(raw, keys, **FLOW) == opt


def test_tag_binds_every_input() -> None:
    opt = MiresgaOption(1, 1460, 7, 7, True)
    raw = option.encode(opt, key=KEY, **FLOW)
    for name, other in [("saddr", "10.1.0.9"), ("daddr", "10.2.0.9"), ("sport", 40001),
                        ("dport", 81), ("seq", 1235)]:
        with pytest.raises(OptionError, match="tag"):
            option.verify(raw, (KEY, None), **{**FLOW, name: other})
    for i in range(4, 20):  # any bit flipped in fields or tag
        bad = bytearray(raw)
        bad[i] ^= 0x01
        with pytest.raises(OptionError):
            option.verify(bytes(bad), (KEY, None), **FLOW)
    with pytest.raises(OptionError, match="tag"):
        option.verify(raw, (bytes(16), None), **FLOW)
    with pytest.raises(OptionError, match="no key in slot 0"):
        option.verify(raw, (None, KEY), **FLOW)


def test_malformed_is_a_clear_error() -> None:
    with pytest.raises(OptionError, match="want 20"):
        option.decode(b"\xfe\x14")
    with pytest.raises(OptionError, match="not a Miresga option"):
        option.decode(bytes([254, 20, 0, 1]) + bytes(16))
    bad_version = bytearray(option.encode(MiresgaOption(1, 1, None, 0, False), key=KEY, **FLOW))
    bad_version[4] = 0x20
    with pytest.raises(OptionError, match="version 2"):
        option.decode(bytes(bad_version))
    with pytest.raises(OptionError, match="window scale 15"):
        MiresgaOption(1, 1460, 15, 0, False)
    with pytest.raises(OptionError, match="mss 0"):
        MiresgaOption(1, 0, None, 0, False)


def test_rewrite_options() -> None:
    full = option.rewrite_options(MiresgaOption(1, 1400, 8, 7, True))
    assert full == bytes([2, 4, 0x05, 0x78, 1, 3, 3, 8, 1, 1, 4, 2])
    bare = option.rewrite_options(MiresgaOption(1, 536, None, 0, False))
    assert bare == bytes([2, 4, 0x02, 0x18]) + b"\x01" * 8
    assert len(full) == option.REWRITE_LENGTH


def test_cstruct_layout_pads_like_c() -> None:
    s = CStruct("t", [Field("a", "u8"), Field("b", "u64"), Field("c", "be16"),
                      Field("d", "u32", count=2)])
    assert s.size == 32 and s.offset("b") == 8 and s.offset("d") == 20
    packed = s.pack(a=1, b=2, c=b"\x00\x50", d=[3, 4])
    assert s.unpack(packed) == {"a": 1, "b": 2, "c": b"\x00\x50", "d": [3, 4]}
    assert "__u8 _pad0[7];" in s.c_decl()
    with pytest.raises(KeyError):
        s.pack(zz=1)
