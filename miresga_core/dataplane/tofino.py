"""``TofinoSwitch``: the control side of native/p4 on an Intel Tofino, over ``bfrt_grpc``.

Theory of operation
-------------------
The driver connects to the SDE's BF Runtime gRPC server (``bf_switchd``, port 50052),
binds the ``miresga`` program and looks up every table of the shared schema that targets
Tofino by its stable control-plane name (``@name(".x")`` in native/p4, the strings of
``names.py``). Table kinds map onto bfrt like this:

* HASH / LPM / INDEX tables are match tables: one entry per key. bfrt refuses to add an
  entry that exists and to modify one that does not, so the driver keeps a shadow of what
  it wrote and splits a write into one ``entry_add`` and one ``entry_mod`` call, each a
  single WriteRequest with ``ROLLBACK_ON_ERROR``: a batch lands whole or not at all.
* SINGLETON tables (lb_control, cookie_clock) have no key: their default entry is set.
* REGISTER (lb_bloom) is written per index (data field ``<name>.f1``); COUNTER is read.

Every key and parameter is converted and range-checked against the schema before any RPC,
so a bad entry refuses the batch without touching the switch.

``bfrt_grpc`` ships with the SDE, not on PyPI: it is imported from the SDE's Python path
(``$SDE_INSTALL/lib/python3.*/site-packages/tofino``); without it ``TofinoUnavailable``
says what to install or set. Tests pass a fake module (tests/tofino/fake_bfrt.py) as
``bfrt``.

Cookie clock: the data plane computes ``slot = base_slot + ((global_tstamp - base_ns) >>
SLOT_SHIFT)`` from the switch's 48-bit nanosecond global timestamp, which bfrt_grpc does
not expose. The caller gives ``switch_clock_ns`` (a function that returns it, e.g. from
``bf_ts_global_ts_value_get`` in the switch's own shell); without it ``set_cookie_secret``
refuses with an explanation (docs/tofino.md).

Everything above the primitives (VIPs, routes, front-end changes, cookie secrets) is the
shared ``SwitchDriver`` logic (driver.py); this module adds batched offload bursts
(``offload_update``) and secret rotation.
"""

from __future__ import annotations

import functools
import glob
import importlib
import ipaddress
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .. import cookie
from . import names
from .driver import SwitchDriver
from .schema import COUNTERS, SCHEMA, Field, Kind, OffloadModeId, Table, table

__all__ = ["PROGRAM", "TofinoError", "TofinoSwitch", "TofinoUnavailable", "import_bfrt"]

PROGRAM = "miresga"  # the P4 program name given to bf-p4c / p4_build.sh
_STAMP_BITS = 48  # Tofino global timestamp width
_PORT_BITS = 9  # PortId_t

Key = tuple[tuple[int, int | None], ...]  # shadow key: (value, prefix_len) per key field
_SHADOWED = (Kind.HASH, Kind.LPM, Kind.INDEX, Kind.SINGLETON)


class TofinoUnavailable(RuntimeError):
    """bfrt_grpc cannot be imported, or the BF Runtime server cannot be reached."""


class TofinoError(RuntimeError):
    """The switch refused a request (the message names the table and operation)."""


def import_bfrt() -> Any:
    """``bfrt_grpc.client`` from the Python path or the SDE named by $SDE_INSTALL."""
    try:
        return importlib.import_module("bfrt_grpc.client")
    except ImportError:
        pass
    sde = os.environ.get("SDE_INSTALL", "")
    added = []
    for site in sorted(glob.glob(os.path.join(sde, "lib", "python3*", "site-packages"))):
        for path in (site, os.path.join(site, "tofino"),
                     os.path.join(site, "tofino", "bfrt_grpc")):
            if os.path.isdir(path) and path not in sys.path:
                sys.path.append(path)
                added.append(path)
    try:
        return importlib.import_module("bfrt_grpc.client")
    except ImportError as exc:
        where = f"searched {added}" if added else "SDE_INSTALL is not set" if not sde else \
            f"no lib/python3*/site-packages under SDE_INSTALL={sde}"
        raise TofinoUnavailable(
            "the tofino data plane needs bfrt_grpc, the BF Runtime gRPC client that ships "
            "with the Intel (Barefoot) SDE; it is not on PyPI. Set SDE_INSTALL to the SDE's "
            "install directory or put its site-packages/tofino directory on PYTHONPATH "
            f"({where}; import error: {exc})") from None


def _to_int(f: Field, value: Any, what: str) -> int:
    if f.fmt == "ipv4" and isinstance(value, str):
        try:
            value = int(ipaddress.IPv4Address(value))
        except ValueError:
            raise ValueError(f"{what}: {value!r} is not an IPv4 address") from None
    elif f.fmt == "mac" and isinstance(value, str):
        raw = value.replace(":", "").replace("-", "")
        if len(raw) != 12:
            raise ValueError(f"{what}: {value!r} is not a MAC address")
        value = int(raw, 16)
    elif f.fmt == "mac" and isinstance(value, (bytes, bytearray)):
        if len(value) != 6:
            raise ValueError(f"{what}: {value!r} is not a MAC address")
        value = int.from_bytes(value, "big")
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what}: expected an integer, got {value!r}")
    if not 0 <= value < (1 << f.bits):
        raise ValueError(f"{what}: {value} does not fit in {f.bits} bits")
    return value


class TofinoSwitch(SwitchDriver):
    """native/p4 on a Tofino. ``bfrt`` replaces the imported bfrt_grpc.client (tests)."""

    def __init__(self, grpc_addr: str = "localhost:50052", *, program: str = PROGRAM,
                 device_id: int = 0, client_id: int = 0, pipe_id: int = 0xFFFF,
                 bfrt: Any = None, switch_clock_ns: Callable[[], int] | None = None,
                 clear: bool = True) -> None:
        gc = bfrt if bfrt is not None else import_bfrt()
        self._gc = gc
        self._rollback = gc.bfruntime_pb2.WriteRequest.ROLLBACK_ON_ERROR
        self._switch_clock = switch_clock_ns
        try:
            self._iface = gc.ClientInterface(grpc_addr, client_id=client_id,
                                             device_id=device_id)
            info = self._iface.bfrt_info_get(program)
            self._iface.bind_pipeline_config(info.p4_name_get())
        except (gc.BfruntimeRpcException, RuntimeError) as exc:
            # bfrt_info_get raises RuntimeError when the program is not on the device
            raise TofinoUnavailable(f"BF Runtime server {grpc_addr}, program {program!r}: "
                                    f"{exc}") from exc
        self._target = gc.Target(device_id=device_id, pipe_id=pipe_id)
        self._tables: dict[str, Any] = {}
        for t in SCHEMA:
            if "tofino" in t.targets:
                try:
                    self._tables[t.name] = info.table_get(t.name)
                except (KeyError, gc.BfruntimeRpcException) as exc:
                    raise TofinoError(f"program {program!r} has no table {t.name!r}: is the "
                                      f"switch running native/p4? ({exc})") from exc
        self._shadow: dict[str, dict[Key, dict[str, int]]] = {
            t.name: {} for t in SCHEMA
            if "tofino" in t.targets and t.kind in _SHADOWED}
        self._secrets: cookie.CookieSecrets | None = None
        if clear:
            self._clear()

    # ------------------------------------------------------------------ conversions

    def _table(self, name: str) -> Table:
        t = table(name)
        if "tofino" not in t.targets:
            raise ValueError(f"{name}: not a Tofino table (targets {sorted(t.targets)})")
        return t

    def _key(self, t: Table, key: Mapping[str, Any]) -> Key:
        what = f"{t.name} key"
        if t.kind is Kind.INDEX:
            names_ok = {"index", t.keys[0].name}
            if len(key) != 1 or not set(key) <= names_ok:
                raise ValueError(f"{what}: expected {{'{t.keys[0].name}': n}}, got {dict(key)}")
            (index,) = key.values()
            if isinstance(index, bool) or not isinstance(index, int) \
                    or not 0 <= index < t.size:
                raise ValueError(f"{what}: index {index!r} out of range 0..{t.size - 1}")
            return ((index, None),)
        if t.kind is Kind.LPM:
            plen = key.get("prefixlen")
            wanted = {"prefixlen"} | {f.name for f in t.keys}
            if set(key) != wanted:
                raise ValueError(f"{what}: expected fields {sorted(wanted)}, got {sorted(key)}")
            (f,) = t.keys
            if isinstance(plen, bool) or not isinstance(plen, int) or not 0 <= plen <= f.bits:
                raise ValueError(f"{what}: prefixlen {plen!r} out of range 0..{f.bits}")
            v = _to_int(f, key[f.name], f"{what} {f.name}")
            v &= ((1 << f.bits) - 1) ^ ((1 << (f.bits - plen)) - 1)
            return ((v, plen),)
        wanted = {f.name for f in t.keys}
        if set(key) != wanted:
            raise ValueError(f"{what}: expected fields {sorted(wanted)}, got {sorted(key)}")
        return tuple((_to_int(f, key[f.name], f"{what} {f.name}"), None) for f in t.keys)

    def _params(self, t: Table, params: Mapping[str, Any]) -> dict[str, int]:
        wanted = {f.name for f in t.params}
        if set(params) != wanted:
            raise ValueError(f"{t.name}: expected parameters {sorted(wanted)}, "
                             f"got {sorted(params)}")
        out = {f.name: _to_int(f, params[f.name], f"{t.name} {f.name}") for f in t.params}
        if t.name == names.ROUTE and out["port"] >= 1 << _PORT_BITS:
            # the schema's port is 16 bits for XDP; a Tofino port id is 9 bits
            raise ValueError(f"{t.name} port: {out['port']} is not a Tofino port "
                             f"(0..{(1 << _PORT_BITS) - 1})")
        return out

    def _make_key(self, t: Table, key: Key) -> Any:
        tb, kt = self._tables[t.name], self._gc.KeyTuple
        if t.kind is Kind.LPM:
            return tb.make_key([kt(t.keys[0].name, key[0][0], prefix_len=key[0][1])])
        if t.kind is Kind.REGISTER:
            return tb.make_key([kt("$REGISTER_INDEX", key[0][0])])
        if t.kind is Kind.COUNTER:
            return tb.make_key([kt("$COUNTER_INDEX", key[0][0])])
        return tb.make_key([kt(f.name, v) for f, (v, _p) in zip(t.keys, key, strict=True)])

    def _make_data(self, t: Table, params: Mapping[str, int]) -> Any:
        assert t.action is not None
        dt = self._gc.DataTuple
        return self._tables[t.name].make_data([dt(k, v) for k, v in params.items()],
                                              t.action.name)

    def _rpc(self, t: Table, op: str, n: int, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except self._gc.BfruntimeRpcException as exc:
            raise TofinoError(f"{t.name}: {op} of {n} entries refused: {exc}") from exc

    # ------------------------------------------------------------------ generic writes

    def write(self, table_name: str, entries: Iterable[tuple[Mapping[str, Any],
                                                          Mapping[str, Any]]]) -> int:
        t = self._table(table_name)
        if t.kind is Kind.COUNTER:
            raise ValueError(f"{table_name}: counters are written by the data plane")
        entries = list(entries)
        if t.kind is Kind.SINGLETON:
            if len(entries) != 1 or dict(entries[0][0]) not in ({}, {"index": 0}):
                raise ValueError(f"{table_name}: a singleton takes one entry with key "
                                 "{} or {'index': 0}")
            params = self._params(t, entries[0][1])
            data = self._make_data(t, params)
            self._rpc(t, "default_entry_set", 1,
                      lambda: self._tables[t.name].default_entry_set(self._target, data))
            self._shadow[t.name] = {(): params}
            return 1
        if t.kind is Kind.REGISTER:
            return self._write_register(t, entries)
        packed: dict[Key, dict[str, int]] = {}
        for k, v in entries:  # convert everything first: a bad entry refuses the batch
            packed[self._key(t, k)] = self._params(t, v)
        shadow = self._shadow[t.name]
        adds = [(k, v) for k, v in packed.items() if k not in shadow]
        mods = [(k, v) for k, v in packed.items() if k in shadow]
        tb = self._tables[t.name]
        for op, batch in (("entry_add", adds), ("entry_mod", mods)):
            if not batch:
                continue
            keys = [self._make_key(t, k) for k, _ in batch]
            datas = [self._make_data(t, v) for _, v in batch]
            if op == "entry_add":
                call = functools.partial(tb.entry_add, self._target, keys, datas,
                                         atomicity=self._rollback)
            else:  # bfrt's entry_mod takes no atomicity: a failed modify is reported
                call = functools.partial(tb.entry_mod, self._target, keys, datas)
            self._rpc(t, op, len(batch), call)
            shadow.update(batch)
        return len(packed)

    def _write_register(self, t: Table, entries: list[tuple[Mapping[str, Any],
                                                          Mapping[str, Any]]]) -> int:
        (vf,) = t.value_fields
        cells = []
        for k, v in entries:
            (index,) = k.values() if len(k) == 1 else (None,)
            if isinstance(index, bool) or not isinstance(index, int) \
                    or not 0 <= index < t.size:
                raise ValueError(f"{t.name}: index key {dict(k)} out of range 0..{t.size - 1}")
            if set(v) != {vf.name}:
                raise ValueError(f"{t.name}: expected value field {vf.name!r}, got {sorted(v)}")
            cells.append((index, _to_int(vf, v[vf.name], f"{t.name} {vf.name}")))
        tb, dt = self._tables[t.name], self._gc.DataTuple
        keys = [self._make_key(t, ((i, None),)) for i, _ in cells]
        datas = [tb.make_data([dt(f"{t.name}.f1", v)]) for _, v in cells]
        self._rpc(t, "entry_add", len(cells), lambda: tb.entry_add(
            self._target, keys, datas, atomicity=self._rollback))
        return len(cells)

    def delete(self, table_name: str, keys: Iterable[Mapping[str, Any]]) -> int:
        t = self._table(table_name)
        if t.kind not in (Kind.HASH, Kind.LPM, Kind.INDEX):
            raise ValueError(f"{table_name}: entries of a {t.kind.value} cannot be deleted")
        shadow = self._shadow[t.name]
        present = list(dict.fromkeys(k for k in (self._key(t, key) for key in keys)
                                     if k in shadow))
        if present:
            made = [self._make_key(t, k) for k in present]
            self._rpc(t, "entry_del", len(present),
                      lambda: self._tables[t.name].entry_del(self._target, made))
            for k in present:
                del shadow[k]
        return len(present)

    def _drop_all(self, table_name: str) -> int:
        t = self._table(table_name)
        shadow = self._shadow[t.name]
        count = len(shadow)
        self._rpc(t, "entry_del(all)", 0,
                  functools.partial(self._tables[t.name].entry_del, self._target))
        shadow.clear()
        return count

    def read(self, table_name: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        """What the driver last wrote for ``key`` (its shadow), or None. Registers and
        counters are the data plane's: read them with ``counters`` (or bfrt directly)."""
        t = self._table(table_name)
        if t.kind not in _SHADOWED:
            raise ValueError(f"{table_name}: a {t.kind.value} is not read through read()")
        if t.kind is Kind.SINGLETON:
            if dict(key) not in ({}, {"index": 0}):
                raise ValueError(f"{table_name}: a singleton's key is {{}} or {{'index': 0}}")
            return self._shadow[t.name].get(())
        return self._shadow[t.name].get(self._key(t, key))

    def _clear(self) -> None:
        """Start from empty tables: delete every entry, zero the Bloom filter."""
        for name in self._shadow:
            if table(name).kind is not Kind.SINGLETON:
                self._drop_all(name)
        self.clear_bloom()
        self.write(names.LB_CONTROL, [({}, {"active": 0, "changing": 0})])

    # ------------------------------------------------------------------ offloads

    def offload_update(self, add: Sequence[tuple[tuple[str, int], tuple[str, int], int,
                                                 tuple[str, int], OffloadModeId]] = (),
                       remove: Sequence[tuple[tuple[str, int], tuple[str, int]]] = ()) -> None:
        """Apply a burst of offload changes in four RPCs at most.

        ``add`` holds (client, vip, backend_index, backend, mode), ``remove`` (client,
        vip). Removals go first; reverse entries are added before forward ones (backend
        packets may follow the first offloaded ACK) and removed after them."""
        fwd_del, rev_del = [], []
        for client, vip in remove:
            fkey = {"client_addr": client[0], "client_port": client[1],
                    "vip_addr": vip[0], "vip_port": vip[1]}
            entry = self.read(names.OFFLOAD, fkey)
            fwd_del.append(fkey)
            if entry is None:
                continue
            b = self.read(names.BACKEND, {"index": entry["backend"]})
            if b is not None:
                rev_del.append({"client_addr": client[0], "client_port": client[1],
                                "backend_addr": b["addr"], "backend_port": b["port"]})
        rev_add, fwd_add = [], []
        for client, vip, index, backend, mode in add:
            rev_add.append(({"client_addr": client[0], "client_port": client[1],
                             "backend_addr": backend[0], "backend_port": backend[1]},
                            {"vip_addr": vip[0], "vip_port": vip[1]}))
            fwd_add.append(({"client_addr": client[0], "client_port": client[1],
                             "vip_addr": vip[0], "vip_port": vip[1]},
                            {"backend": index, "mode": int(OffloadModeId(mode))}))
        if fwd_del:
            self.delete(names.OFFLOAD, fwd_del)
        if rev_del:
            self.delete(names.OFFLOAD_REV, rev_del)
        if rev_add:
            self.write(names.OFFLOAD_REV, rev_add)
        if fwd_add:
            self.write(names.OFFLOAD, fwd_add)

    def offload_add(self, client: tuple[str, int], vip: tuple[str, int], backend_index: int,
                    backend: tuple[str, int], mode: OffloadModeId) -> None:
        self.offload_update(add=[(client, vip, backend_index, backend, mode)])

    def offload_remove(self, client: tuple[str, int], vip: tuple[str, int]) -> None:
        self.offload_update(remove=[(client, vip)])

    # ------------------------------------------------------------------ cookies

    def switch_clock_ns(self) -> int:
        """The switch's 48-bit global timestamp, from the function given at construction."""
        if self._switch_clock is None:
            raise TofinoError(
                "the cookie clock needs switch_clock_ns: the slot is computed from the "
                "switch's global timestamp, which bfrt_grpc cannot read (docs/tofino.md)")
        return self._switch_clock() & ((1 << _STAMP_BITS) - 1)

    def set_cookie_secret(self, current: bytes, previous: bytes | None = None) -> None:
        self.switch_clock_ns()  # refuse before writing anything when there is no clock
        super().set_cookie_secret(current, previous)
        self._secrets = cookie.CookieSecrets(current, previous)

    def rotate_cookie_secret(self, new: bytes | None = None) -> cookie.CookieSecrets:
        """Make a new key current (random unless given); the old one stays as previous.
        Also re-aligns the cookie clock, well within the 48-bit timestamp's 3.26 days."""
        if self._secrets is None:
            raise TofinoError("no cookie secret set yet: call set_cookie_secret first")
        secrets = self._secrets.rotate(new)
        self.set_cookie_secret(secrets.current, secrets.previous)
        return secrets

    def counters(self) -> dict[str, tuple[int, int]]:
        """Counter name -> (packets, bytes). Tofino counts each packet once, under its
        final outcome, so ``rx`` is reported as the sum over all outcomes."""
        t = table(names.COUNTERS)
        tb = self._tables[t.name]
        keys = [self._make_key(t, ((i, None),)) for i in range(len(COUNTERS))]
        rows = self._rpc(t, "entry_get", len(keys), lambda: list(
            tb.entry_get(self._target, keys, {"from_hw": True})))
        out: dict[str, tuple[int, int]] = {}
        for (data, _key), (name, _doc) in zip(rows, COUNTERS, strict=True):
            d = data.to_dict()
            out[name] = (int(d["$COUNTER_SPEC_PKTS"]), int(d["$COUNTER_SPEC_BYTES"]))
        out["rx"] = (sum(p for p, _ in out.values()), sum(b for _, b in out.values()))
        return out

    def close(self) -> None:
        tear_down = getattr(self._iface, "tear_down_stream", None)
        if tear_down is not None:
            tear_down()
