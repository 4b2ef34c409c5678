"""The table schema: names, layouts, packing, and that C agrees with Python's layout."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from miresga_core.dataplane import gen_c, names, schema
from miresga_core.dataplane.flowhash import bloom_bits, crc32c, lb_bucket


def test_every_name_has_one_table():
    assert [t.name for t in schema.SCHEMA] == list(names.ALL_TABLES)
    for t in schema.SCHEMA:
        assert t.purpose and len(t.name) <= 15
        assert t.size > 0


def test_pack_roundtrip_and_byte_order():
    t = schema.table(names.OFFLOAD)
    key = t.pack_key(client_addr="10.0.0.1", vip_addr="10.0.0.2", client_port=80,
                     vip_port=443)
    assert key == bytes([10, 0, 0, 1, 10, 0, 0, 2, 0, 80, 1, 187])
    assert t.unpack_key(key)["client_addr"] == "10.0.0.1"
    r = schema.table(names.ROUTE)
    raw = r.pack_value(port=3, smac="02:00:00:00:00:01", dmac="02:00:00:00:00:02")
    assert r.unpack_value(raw) == {"port": 3, "smac": "02:00:00:00:00:01",
                                   "dmac": "02:00:00:00:00:02"}
    assert r.pack_key(prefixlen=32, dst="1.2.3.4")[4:] == bytes([1, 2, 3, 4])


def test_pack_refuses_bad_values():
    t = schema.table(names.OFFLOAD)
    with pytest.raises(ValueError, match="missing"):
        t.pack_key(client_addr="10.0.0.1")
    with pytest.raises(ValueError, match="does not fit"):
        schema.table(names.OFFLOAD).pack_value(backend=70000, mode=0)
    with pytest.raises(ValueError, match="MAC"):
        schema.table(names.VIP_ADDR).pack_value(mac="02:00")
    with pytest.raises(KeyError, match="known"):
        schema.table("nope")


def test_generated_header_compiles_with_python_layout(tmp_path):
    """Every struct's size and member offsets are _Static_asserts of Python's layout."""
    cc = shutil.which("cc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler")
    src = tmp_path / "t.c"
    src.write_text('#include "switch_tables.h"\nint main(void) { return 0; }\n')
    subprocess.run([cc, "-Wall", "-Werror", "-I", str(gen_c.GENERATED_DIR), "-o",
                    str(tmp_path / "t"), str(src)], check=True, timeout=60)


def test_flow_hashes_are_standard_crcs():
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    assert 0 <= lb_bucket("10.0.0.1", 1) < schema.LB_BUCKETS
    a, b = bloom_bits("10.0.0.1", 1)
    assert 0 <= a < schema.BLOOM_BITS and 0 <= b < schema.BLOOM_BITS


def test_rebalance_keeps_buckets_of_remaining_members():
    from miresga_core.dataplane.driver import rebalance

    two = rebalance(None, [0, 1])
    assert sorted(set(two)) == [0, 1] and two.count(0) == two.count(1)
    three = rebalance(two, [0, 1, 2])
    assert [three.count(m) for m in (0, 1, 2)] in ([342, 341, 341], [341, 342, 341],
                                                   [341, 341, 342])
    moved = sum(a != b for a, b in zip(two, three, strict=True))
    assert moved == three.count(2)  # only buckets given to the new member moved
    one = rebalance(three, [2])
    assert set(one) == {2}
    with pytest.raises(ValueError):
        rebalance(None, [])
