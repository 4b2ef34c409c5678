"""A strict fake of the parts of ``bfrt_grpc.client`` that TofinoSwitch uses.

What the real client looks like (read for API facts only, nothing copied: open-p4studio
``pkgsrc/bf-drivers/src/bf_rt/bfruntime_grpc_client/python/client.py``, installed as
``bfrt_grpc/client.py``; register conventions from
``pkgsrc/p4-examples/p4_16_programs/tna_register/test.py``):
``ClientInterface(grpc_addr, client_id, device_id, ...)`` with ``bfrt_info_get(p4_name)``
and ``bind_pipeline_config(p4_name)``; ``Target(device_id, pipe_id)``;
``_BfRtInfo.table_get(name)``; ``_Table.make_key([KeyTuple(name, value, mask, prefix_len)])``,
``make_data([DataTuple(name, val)], action_name)``, ``entry_add / entry_mod(target,
key_list, data_list)``, ``entry_del(target, key_list=None)`` (no keys: every entry),
``entry_get(target, key_list, flags)`` yielding ``(data, key)`` with ``to_dict()``,
``default_entry_set(target, data)``; a write with several keys is one WriteRequest whose
``atomicity`` (``bfruntime_pb2.WriteRequest.CONTINUE_ON_ERROR / ROLLBACK_ON_ERROR``) says
what a failing update does to the others; write errors raise
``BfruntimeReadWriteRpcException``.

The program the fake serves is native/p4 itself: tables, key fields (names, widths,
match kinds), actions, parameters (names, widths), registers and counters come from the
P4 sources through p4parse/p4cp, never from a list kept here. Anything the P4 does not
declare is refused with an error, as are values that do not fit their width, missing or
repeated fields, entries added twice, modified or deleted while absent, actions that are
default-only used in entries, keyed writes to keyless tables, and tables over capacity.

The fake also runs packets: ``FakeSwitch.run_ingress`` executes the P4 ingress control
(p4run) with the entries the driver wrote, so tests see what those entries do.
"""

from __future__ import annotations

import functools
import ipaddress
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import p4parse
from p4cp import CpTable, control_plane
from p4run import Machine, _Frame

ROOT = Path(__file__).resolve().parents[2]
P4_TOP = ROOT / "native" / "p4" / "miresga.p4"
PROGRAM = "miresga"

__all__ = ["FakeRpcError", "FakeSwitch"]


class FakeRpcError(Exception):
    """Stands for BfruntimeReadWriteRpcException / BfruntimeForwardingRpcException."""

    def __init__(self, message: str, errors: list[tuple[int, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []

    def sub_errors_get(self) -> list[tuple[int, str]]:
        return self.errors


@dataclass(frozen=True)
class KeyTuple:
    name: str
    value: Any = None
    mask: Any = None
    prefix_len: Any = None
    low: Any = None
    high: Any = None


@dataclass(frozen=True)
class DataTuple:
    name: str
    val: Any = None


@dataclass(frozen=True)
class Target:
    device_id: int = 0
    pipe_id: int = 0xFFFF
    direction: int = 0xFF
    prsr_id: int = 0xFF


class _WriteRequest:
    CONTINUE_ON_ERROR = 0
    ROLLBACK_ON_ERROR = 1
    ERROR_ON_ERROR = 2


bfruntime_pb2 = types.SimpleNamespace(WriteRequest=_WriteRequest)


def _check_int(what: str, value: Any, bits: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what}: value {value!r} is not an int (no client annotation set)")
    if not 0 <= value < (1 << bits):
        raise ValueError(f"{what}: {value} does not fit in {bits} bits")
    return value


@dataclass
class _Key:
    table: CpTable
    values: tuple[tuple[int, int | None], ...]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f, (v, plen) in zip(self.table.keys, self.values, strict=True):
            out[f.name] = {"value": v, "prefix_len": plen} if f.match == "lpm" else {"value": v}
        return out


@dataclass
class _Data:
    table: CpTable
    action: str | None
    values: dict[str, int]
    is_default_entry: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.values)
        out["action_name"] = self.action
        out["is_default_entry"] = self.is_default_entry
        return out


class _Table:
    def __init__(self, switch: FakeSwitch, cp: CpTable) -> None:
        self._switch = switch
        self.cp = cp

    # ---- key and data objects

    def make_key(self, key_field_list_in: list[KeyTuple]) -> _Key:
        cp = self.cp
        given = {}
        for kt in key_field_list_in:
            if not isinstance(kt, KeyTuple):
                raise TypeError(f"{cp.name}: key fields must be KeyTuple, got {kt!r}")
            if kt.name in given:
                raise ValueError(f"{cp.name}: key field {kt.name!r} given twice")
            given[kt.name] = kt
        names = [f.name for f in cp.keys]
        unknown = sorted(set(given) - set(names))
        missing = sorted(set(names) - set(given))
        if unknown or missing:
            raise KeyError(f"{cp.name}: unknown key fields {unknown}, missing {missing}; "
                           f"the P4 declares {names}")
        values = []
        for f in cp.keys:
            kt = given[f.name]
            v = _check_int(f"{cp.name}.{f.name}", kt.value, f.bits)
            if kt.mask is not None or kt.low is not None or kt.high is not None:
                raise ValueError(f"{cp.name}.{f.name}: {f.match} key takes no mask or range")
            plen = None
            if f.match == "lpm":
                plen = _check_int(f"{cp.name}.{f.name} prefix_len", kt.prefix_len, 8)
                if plen > f.bits:
                    raise ValueError(f"{cp.name}.{f.name}: prefix_len {plen} > {f.bits}")
                v &= ~((1 << (f.bits - plen)) - 1) & ((1 << f.bits) - 1)
            elif kt.prefix_len is not None:
                raise ValueError(f"{cp.name}.{f.name}: exact key takes no prefix_len")
            if cp.kind != "match" and v >= cp.size:
                raise ValueError(f"{cp.name}: index {v} out of range 0..{cp.size - 1}")
            values.append((v, plen))
        return _Key(cp, tuple(values))

    def make_data(self, data_field_list_in: list[DataTuple] | None = None,
                  action_name: str | None = None, get: bool = False) -> _Data:
        cp = self.cp
        if cp.kind == "match":
            if action_name not in cp.actions:
                raise KeyError(f"{cp.name}: no action {action_name!r}; the P4 declares "
                               f"{sorted(cp.actions)}")
            fields = cp.actions[action_name]
        else:
            if action_name is not None:
                raise ValueError(f"{cp.name}: a {cp.kind} has no actions")
            fields = cp.data
        by_name = {f.name: f for f in fields}
        values: dict[str, int] = {}
        for dt in data_field_list_in or []:
            if not isinstance(dt, DataTuple):
                raise TypeError(f"{cp.name}: data fields must be DataTuple, got {dt!r}")
            f = by_name.get(dt.name)
            if f is None:
                raise KeyError(f"{cp.name}: {action_name or cp.kind} has no field {dt.name!r};"
                               f" the P4 declares {sorted(by_name)}")
            if dt.name in values:
                raise ValueError(f"{cp.name}: data field {dt.name!r} given twice")
            values[dt.name] = _check_int(f"{cp.name}.{dt.name}", dt.val, f.bits)
        missing = sorted(set(by_name) - set(values))
        if missing and not get:
            raise KeyError(f"{cp.name}: missing data fields {missing}")
        return _Data(cp, action_name, values)

    # ---- writes

    def entry_add(self, target: Target, key_list: list[_Key] | None = None,
                  data_list: list[_Data] | None = None,
                  atomicity: int = _WriteRequest.CONTINUE_ON_ERROR, **_: Any) -> None:
        self._write("add", target, key_list or [], data_list, atomicity)

    def entry_mod(self, target: Target, key_list: list[_Key] | None = None,
                  data_list: list[_Data] | None = None, **_: Any) -> None:
        self._write("mod", target, key_list or [], data_list, _WriteRequest.CONTINUE_ON_ERROR)

    def entry_del(self, target: Target, key_list: list[_Key] | None = None, **_: Any) -> None:
        self._switch._target_ok(target)
        if not key_list:
            self._switch._log("del_all", self.cp.name, 1)
            if self.cp.kind == "match":
                self._switch.entries[self.cp.name].clear()
            elif self.cp.kind == "register":
                self._switch.registers[self.cp.name].clear()
            else:
                self._switch.counters.clear()
            return
        self._write("del", target, key_list, None, _WriteRequest.CONTINUE_ON_ERROR)

    def default_entry_set(self, target: Target, data: _Data, **_: Any) -> None:
        self._switch._target_ok(target)
        cp = self.cp
        if cp.kind != "match":
            raise FakeRpcError(f"{cp.name}: a {cp.kind} has no default entry")
        self._own(data)
        self._switch._log("default", cp.name, 1)
        self._switch.defaults[cp.name] = (data.action, dict(data.values))

    def default_entry_get(self, target: Target, **_: Any) -> Iterator[tuple[_Data, None]]:
        self._switch._target_ok(target)
        action, values = self._switch.default_of(self.cp.name)
        yield _Data(self.cp, action, values, True), None

    def entry_get(self, target: Target, key_list: list[_Key] | None = None,
                  flags: dict[str, bool] | None = None, **_: Any
                  ) -> Iterator[tuple[_Data, _Key]]:
        self._switch._target_ok(target)
        sw, cp = self._switch, self.cp
        keys = key_list if key_list else [_Key(cp, k) for k in sw._all_keys(cp)]
        results = []
        for k in keys:
            self._own(k)
            results.append((sw._read(cp, k.values), k))
        return iter(results)

    # ---- helpers

    def _own(self, obj: _Key | _Data) -> None:
        if obj.table is not self.cp:
            raise FakeRpcError(f"{self.cp.name}: key/data made by table {obj.table.name}")

    def _write(self, op: str, target: Target, keys: list[_Key], datas: list[_Data] | None,
               atomicity: int) -> None:
        sw, cp = self._switch, self.cp
        sw._target_ok(target)
        if datas is not None and len(datas) != len(keys):
            raise FakeRpcError(f"{cp.name}: {len(keys)} keys but {len(datas)} data")
        if cp.kind == "match" and not cp.keys:
            raise FakeRpcError(f"{cp.name}: a keyless table only has its default entry; "
                               f"use default_entry_set")
        sw._log(op, cp.name, len(keys))
        saved = sw._snapshot(cp)
        errors: list[tuple[int, str]] = []
        for i, k in enumerate(keys):
            try:
                self._own(k)
                if datas is not None:
                    self._own(datas[i])
                sw._apply(op, cp, k.values, datas[i] if datas is not None else None)
            except (FakeRpcError, KeyError, ValueError) as exc:
                errors.append((i, str(exc)))
        if errors:
            if atomicity == _WriteRequest.ROLLBACK_ON_ERROR:
                sw._restore(cp, saved)
            raise FakeRpcError(f"{cp.name}: {op} failed: {errors}", errors)


@dataclass
class _BfRtInfo:
    switch: FakeSwitch

    def p4_name_get(self) -> str:
        return self.switch.program

    def table_get(self, name: str) -> _Table:
        bare = name[len("pipe."):] if name.startswith("pipe.") else name
        cp = self.switch.cp.get(bare)
        if cp is None:
            raise KeyError(f"table {name!r} is not in program {self.switch.program}; the P4 "
                           f"declares {sorted(self.switch.cp)}")
        return _Table(self.switch, cp)


@dataclass
class FakeSwitch:
    """The switch side: program, entries, registers, counters, and an RPC log."""

    top: Path = P4_TOP
    target: int = 1
    program: str = PROGRAM
    grpc_addr: str = "localhost:50052"
    pipes: int = 2
    prog: Any = None
    cp: dict[str, CpTable] = field(default_factory=dict)
    entries: dict[str, dict[tuple, tuple[str, dict[str, int]]]] = field(default_factory=dict)
    defaults: dict[str, tuple[str, dict[str, int]]] = field(default_factory=dict)
    registers: dict[str, dict[int, int]] = field(default_factory=dict)
    counters: dict[int, tuple[int, int]] = field(default_factory=dict)
    rpcs: list[tuple[str, str, int]] = field(default_factory=list)
    bound: str | None = None

    def __post_init__(self) -> None:
        self.prog, self.cp = _compiled(Path(self.top), self.target)
        for name, t in self.cp.items():
            if t.kind == "match":
                self.entries[name] = {}
            elif t.kind == "register":
                self.registers[name] = {}

    @property
    def client(self) -> types.SimpleNamespace:
        """A module-like object shaped like ``bfrt_grpc.client``."""
        switch = self

        class ClientInterface:
            def __init__(self, grpc_addr: str, client_id: int = 0, device_id: int = 0,
                         **_: Any) -> None:
                if grpc_addr != switch.grpc_addr:
                    raise FakeRpcError(f"no BF Runtime server at {grpc_addr}")
                self.client_id, self.device_id = client_id, device_id

            def bfrt_info_get(self, p4_name: str | None = None) -> _BfRtInfo:
                if p4_name not in (None, switch.program):
                    raise RuntimeError("BF_RT_INFO not received")
                return _BfRtInfo(switch)

            def bind_pipeline_config(self, p4_name: str) -> None:
                if p4_name != switch.program:
                    raise FakeRpcError(f"cannot bind to {p4_name!r}")
                switch.bound = p4_name

            def tear_down_stream(self) -> None:
                switch.bound = None

        return types.SimpleNamespace(
            ClientInterface=ClientInterface, Target=Target, KeyTuple=KeyTuple,
            DataTuple=DataTuple, BfruntimeReadWriteRpcException=FakeRpcError,
            BfruntimeRpcException=FakeRpcError, bfruntime_pb2=bfruntime_pb2)

    # ---- state

    def _target_ok(self, target: Any) -> None:
        if not isinstance(target, Target):
            raise TypeError(f"target must be a Target, got {target!r}")
        if self.bound is None:
            raise FakeRpcError("client is not bound to a program (bind_pipeline_config)")

    def _log(self, op: str, table: str, n: int) -> None:
        self.rpcs.append((op, table, n))

    def _snapshot(self, cp: CpTable) -> Any:
        if cp.kind == "match":
            return dict(self.entries[cp.name])
        if cp.kind == "register":
            return dict(self.registers[cp.name])
        return dict(self.counters)

    def _restore(self, cp: CpTable, saved: Any) -> None:
        if cp.kind == "match":
            self.entries[cp.name] = saved
        elif cp.kind == "register":
            self.registers[cp.name] = saved
        else:
            self.counters = saved

    def _all_keys(self, cp: CpTable) -> Iterable[tuple]:
        if cp.kind == "match":
            return list(self.entries[cp.name])
        return [((i, None),) for i in range(cp.size)]

    def _apply(self, op: str, cp: CpTable, key: tuple, data: _Data | None) -> None:
        if cp.kind == "register":
            assert data is not None or op == "del"
            self.registers[cp.name][key[0][0]] = data.values[cp.data[0].name] if data else 0
            return
        if cp.kind == "counter":
            d = data.values if data else {}
            self.counters[key[0][0]] = (d.get("$COUNTER_SPEC_PKTS", 0),
                                        d.get("$COUNTER_SPEC_BYTES", 0))
            return
        table = self.entries[cp.name]
        if op == "del":
            if key not in table:
                raise FakeRpcError(f"{cp.name}: delete of a missing entry {key}")
            del table[key]
            return
        assert data is not None
        if data.action in cp.default_only:
            raise FakeRpcError(f"{cp.name}: action {data.action} is default-only")
        if op == "add":
            if key in table:
                raise FakeRpcError(f"{cp.name}: entry {key} already exists")
            if len(table) >= cp.size:
                raise FakeRpcError(f"{cp.name}: table full ({cp.size} entries)")
        elif key not in table:
            raise FakeRpcError(f"{cp.name}: modify of a missing entry {key}")
        table[key] = (data.action or "", dict(data.values))

    def _read(self, cp: CpTable, key: tuple) -> _Data:
        if cp.kind == "register":
            v = self.registers[cp.name].get(key[0][0], 0)
            return _Data(cp, None, {cp.data[0].name: [v] * self.pipes})  # type: ignore
        if cp.kind == "counter":
            p, b = self.counters.get(key[0][0], (0, 0))
            return _Data(cp, None, {"$COUNTER_SPEC_PKTS": p, "$COUNTER_SPEC_BYTES": b})
        if key not in self.entries[cp.name]:
            raise FakeRpcError(f"{cp.name}: no entry {key}")
        action, values = self.entries[cp.name][key]
        return _Data(cp, action, dict(values))

    def default_of(self, name: str) -> tuple[str, dict[str, int]]:
        if name in self.defaults:
            return self.defaults[name]
        cp = self.cp[name]
        assert cp.default_action is not None
        action, args = cp.default_action
        return action, {f.name: v for f, v in zip(cp.actions[action], args, strict=True)}

    # ---- the data plane

    def lookup(self, name: str, keys: dict[str, int]) -> tuple[str, dict[str, int]] | None:
        """The entry a packet with these key values hits (longest prefix for lpm)."""
        cp = self.cp[name]
        if not cp.keys:
            return self.default_of(name)
        best = None
        for key, entry in self.entries[name].items():
            plen_total = 0
            for f, (v, plen) in zip(cp.keys, key, strict=True):
                got = keys[f.name]
                if f.match == "lpm":
                    mask = ~((1 << (f.bits - plen)) - 1) & ((1 << f.bits) - 1)
                    if got & mask != v:
                        break
                    plen_total += plen
                elif got != v:
                    break
            else:
                if best is None or plen_total > best[0]:
                    best = (plen_total, entry)
        return None if best is None else best[1]

    def machine(self, hashes: Any = None, cls: type[Machine] = Machine) -> Any:
        tables = {n: (lambda keys, n=n: self.lookup(n, keys)) for n in self.cp
                  if self.cp[n].kind == "match"}
        m = cls(self.prog, tables=tables, hashes=hashes or _default_hash)
        m.registers = self.registers
        return m

    def run_ingress(self, m: Machine, length: int = 64) -> Machine:
        """One pass of SwitchIngress; counted outcomes go to the counters."""
        m.counted.clear()
        m.run("SwitchIngress")
        for _name, index in m.counted:
            p, b = self.counters.get(index, (0, 0))
            self.counters[index] = (p + 1, b + length)
        return m


@functools.cache
def _compiled(top: Path, target: int) -> tuple[Any, dict[str, CpTable]]:
    # parsed once per source tree; tests that mutate sources use their own copy's path
    prog = p4parse.load(top, target)
    return prog, control_plane(prog)


_ALGOS = {  # TNA HashAlgorithm_t -> (polynomial, reflected, init, xorout)
    "CRC32": (0x04C11DB7, True, 0xFFFFFFFF, 0xFFFFFFFF),
}


def _crc32(data: bytes, poly: int, reflected: bool, init: int, xorout: int) -> int:
    crc = init
    if reflected:
        rpoly = int(f"{poly:032b}"[::-1], 2)
        for b in data:
            crc ^= b
            for _ in range(8):
                crc = (crc >> 1) ^ (rpoly if crc & 1 else 0)
    else:
        for b in data:
            crc ^= b << 24
            for _ in range(8):
                crc = ((crc << 1) ^ (poly if crc & 0x80000000 else 0)) & 0xFFFFFFFF
    return crc ^ xorout


def _default_hash(inst: Any, fields: list[tuple[int, int]], m: Machine) -> int:
    """What a Tofino hash unit computes for ``Hash<..>(algo[, poly]).get(fields)``: the
    fields packed in order as bytes (network order), then the CRC the P4 names."""
    bits, width = 0, 0
    for v, w in fields:
        bits, width = (bits << w) | v, width + w
    if width % 8:
        raise ValueError(f"hash {inst.name}: {width} bits is not whole bytes")
    data = bits.to_bytes(width // 8, "big")
    algo = inst.args[0]
    if algo[0] != "member" or algo[1] != ("name", "HashAlgorithm_t"):
        raise ValueError(f"hash {inst.name}: algorithm {algo} not understood")
    if algo[2] in _ALGOS:
        return _crc32(data, *_ALGOS[algo[2]])
    if algo[2] == "CUSTOM":
        poly_name = inst.args[1][1]
        poly = next(i for c in m.prog.controls.values() for n, i in c.instances.items()
                    if n == poly_name)
        frame = _Frame(None, {}, {}, {})
        coeff, rev, _msb, _ext, init, xor = (m.eval(a, frame)[0] for a in poly.args)
        return _crc32(data, coeff, bool(rev), init, xor)
    raise ValueError(f"hash {inst.name}: algorithm {algo[2]} not modelled")


def ip(text: str) -> int:
    return int(ipaddress.IPv4Address(text))
