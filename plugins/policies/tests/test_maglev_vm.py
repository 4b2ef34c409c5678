"""The Maglev table as VM data: a rule program that hashes the key (``hash``) and reads the
table (``tlook``) picks what ``ConsistentHash.pick`` picks, in the Python VM and the C VM.

The program is assembled by hand here: wiring ``Policy.compile`` into the listener compiler
waits for that API on main (docs/policies.md says so), but the table and the hash are
already the ones a compiled form uses.
"""

from __future__ import annotations

import pytest
from miresga_policies.consistent_hash import ConsistentHash, MaglevOptions, request_key

from miresga_core import Address, Backend, RequestHead
from miresga_core.bytecode import load, native
from miresga_core.bytecode.asm import assemble

VMS = ["python"] + (["c"] if native.available() else [])


def program(table: list[int]):
    return assemble(f"""
.table ring {' '.join(map(str, table))}
.pool p "p"
.decision d0 p splice ""
        hash r4, s0
        tlook r5, r4, ring
        setf backend, r5
        route d0
""")


@pytest.mark.parametrize("vm", VMS)
@pytest.mark.parametrize(("size", "key"), [(65537, "client"), (1009, "header:x-user"),
                                           (131071, "path")])
def test_vm_picks_like_python(vm: str, size: int, key: str) -> None:
    backends = [Backend(Address("10.0.0.1", 9000 + i), weight=1 + i % 3, name=f"b{i}", index=i)
                for i in range(7)]
    live = [b for b in backends if b.index != 3]  # a down backend: the table of the others
    policy = ConsistentHash(live, MaglevOptions(key=key, table_size=size))
    runner = load(program(policy.index_table()), prefer=vm)
    assert type(runner).__name__ == ("CVM" if vm == "c" else "PyVM")
    for i in range(500):
        head = RequestHead(method="GET", target=f"/p/{i}", path=f"/p/{i}", query="", host="h",
                           headers=(("x-user", f"user-{i * 7919}"),))
        client = Address(f"192.0.2.{i % 250}", 40000 + i)
        data = request_key(key, head, client)
        outcome = runner.run(data)
        assert outcome.kind == "route"
        assert outcome.backend == policy.pick(head, client).index
