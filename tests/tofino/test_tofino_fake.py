"""The bfrt_grpc fake is strict, and strict about what native/p4 declares: each test here
would pass silently against a lenient fake."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from fake_bfrt import P4_TOP, FakeRpcError, FakeSwitch

P4 = P4_TOP.parent


@pytest.fixture
def env():
    fake = FakeSwitch()
    gc = fake.client
    iface = gc.ClientInterface("localhost:50052", client_id=0, device_id=0)
    info = iface.bfrt_info_get("miresga")
    iface.bind_pipeline_config("miresga")
    return fake, gc, info, gc.Target(device_id=0, pipe_id=0xFFFF)


def _add(gc, tb, target, keys, action, params, **kw):
    tb.entry_add(target, [tb.make_key([gc.KeyTuple(k, v, **kw) for k, v in keys.items()])],
                 [tb.make_data([gc.DataTuple(k, v) for k, v in params.items()], action)])


def test_a_correct_entry_is_accepted(env):
    fake, gc, info, t = env
    _add(gc, info.table_get("backend"), t, {"index": 3}, "set_backend_addr",
         {"addr": 0x0A000001, "port": 80})
    assert fake.entries["backend"] == {((3, None),): ("set_backend_addr",
                                                     {"addr": 0x0A000001, "port": 80})}
    assert info.table_get("pipe.backend").cp.name == "backend"


@pytest.mark.parametrize(("call", "error"), [
    (lambda gc, i: i.table_get("backends"), "not in program"),
    (lambda gc, i: i.table_get("SwitchIngress.backend"), "not in program"),
    (lambda gc, i: i.table_get("backend").make_key([gc.KeyTuple("idx", 1)]),
     "unknown key fields ['idx']"),
    (lambda gc, i: i.table_get("backend").make_key([gc.KeyTuple("index", 1 << 16)]),
     "does not fit in 16 bits"),
    (lambda gc, i: i.table_get("offload").make_key([gc.KeyTuple("client_addr", 1)]),
     "missing ['client_port', 'vip_addr', 'vip_port']"),
    (lambda gc, i: i.table_get("backend").make_key([gc.KeyTuple("index", 1),
                                                    gc.KeyTuple("index", 1)]), "given twice"),
    (lambda gc, i: i.table_get("backend").make_key([gc.KeyTuple("index", "1")]),
     "is not an int"),
    (lambda gc, i: i.table_get("route").make_key([gc.KeyTuple("dst", 1)]),
     "prefix_len"),
    (lambda gc, i: i.table_get("route").make_key([gc.KeyTuple("dst", 1, prefix_len=33)]),
     "prefix_len 33 > 32"),
    (lambda gc, i: i.table_get("backend").make_key([gc.KeyTuple("index", 1, prefix_len=8)]),
     "exact key takes no prefix_len"),
    (lambda gc, i: i.table_get("lb_index_0").make_key([gc.KeyTuple("bucket", 1024)]),
     "does not fit in 10 bits"),
    (lambda gc, i: i.table_get("cookie_secret").make_key([gc.KeyTuple("index", 2)]),
     "does not fit in 1 bits"),
    (lambda gc, i: i.table_get("lb_bloom").make_key([gc.KeyTuple("$REGISTER_INDEX", 2048)]),
     "out of range 0..2047"),
    (lambda gc, i: i.table_get("backend").make_data([gc.DataTuple("addr", 1)], "set_backend"),
     "no action 'set_backend'"),
    (lambda gc, i: i.table_get("backend").make_data([gc.DataTuple("addr", 1)], "forward"),
     "no action 'forward'"),
    (lambda gc, i: i.table_get("backend").make_data(
        [gc.DataTuple("addr", 1), gc.DataTuple("prt", 1)], "set_backend_addr"),
     "has no field 'prt'"),
    (lambda gc, i: i.table_get("backend").make_data(
        [gc.DataTuple("addr", 1 << 32), gc.DataTuple("port", 1)], "set_backend_addr"),
     "does not fit in 32 bits"),
    (lambda gc, i: i.table_get("backend").make_data([gc.DataTuple("addr", 1)],
                                                    "set_backend_addr"),
     "missing data fields ['port']"),
    (lambda gc, i: i.table_get("vip").make_data(
        [gc.DataTuple("mss", 1), gc.DataTuple("window", 1), gc.DataTuple("wscale", 16)],
        "vip_hit"), "does not fit in 4 bits"),
    (lambda gc, i: i.table_get("lb_bloom").make_data([gc.DataTuple("lb_bloom.f2", 1)]),
     "has no field 'lb_bloom.f2'"),
    (lambda gc, i: i.table_get("counters").make_data([gc.DataTuple("$COUNTER_SPEC_PKTS", 1)],
                                                     "count"), "has no actions"),
])
def test_undeclared_names_and_widths_are_refused(env, call, error):
    _fake, gc, info, _t = env
    with pytest.raises((KeyError, ValueError, TypeError), match=re.escape(error)):
        call(gc, info)


def test_write_rules(env):
    _fake, gc, info, t = env
    tb = info.table_get("frontend")
    key = tb.make_key([gc.KeyTuple("index", 1)])
    data = tb.make_data([gc.DataTuple("addr", 7)], "set_frontend_addr")
    with pytest.raises(FakeRpcError, match="modify of a missing entry"):
        tb.entry_mod(t, [key], [data])
    with pytest.raises(FakeRpcError, match="delete of a missing entry"):
        tb.entry_del(t, [key])
    tb.entry_add(t, [key], [data])
    with pytest.raises(FakeRpcError, match="already exists"):
        tb.entry_add(t, [key], [data])
    noaction = tb.make_data([], "NoAction")
    with pytest.raises(FakeRpcError, match="default-only"):
        tb.entry_add(t, [tb.make_key([gc.KeyTuple("index", 2)])], [noaction])
    tb.default_entry_set(t, noaction)  # where NoAction belongs
    lbc = info.table_get("lb_control")
    with pytest.raises(FakeRpcError, match="keyless table"):
        lbc.entry_add(t, [lbc.make_key([])], [lbc.make_data(
            [gc.DataTuple("active", 1), gc.DataTuple("changing", 0)], "set_lb_state")])
    with pytest.raises(FakeRpcError, match="made by table"):
        info.table_get("backend").entry_add(t, [key], [data])
    with pytest.raises(TypeError, match="must be a Target"):
        tb.entry_add(0, [key], [data])
    with pytest.raises(FakeRpcError, match="2 keys but 1 data"):
        tb.entry_add(t, [key, key], [data])


def test_atomicity(env):
    fake, gc, info, t = env
    tb = info.table_get("frontend")
    keys = [tb.make_key([gc.KeyTuple("index", i)]) for i in (1, 2, 1)]
    datas = [tb.make_data([gc.DataTuple("addr", i)], "set_frontend_addr") for i in (1, 2, 3)]
    rollback = gc.bfruntime_pb2.WriteRequest.ROLLBACK_ON_ERROR
    with pytest.raises(FakeRpcError) as exc:
        tb.entry_add(t, keys, datas, atomicity=rollback)
    assert exc.value.sub_errors_get()[0][0] == 2
    assert fake.entries["frontend"] == {}
    with pytest.raises(FakeRpcError):
        tb.entry_add(t, keys, datas)  # CONTINUE_ON_ERROR keeps the good ones
    assert len(fake.entries["frontend"]) == 2


def test_capacity(env):
    fake, gc, info, t = env
    tb = info.table_get("frontend")
    keys = [tb.make_key([gc.KeyTuple("index", i)]) for i in range(64)]
    datas = [tb.make_data([gc.DataTuple("addr", i)], "set_frontend_addr") for i in range(64)]
    tb.entry_add(t, keys, datas)
    fake.entries["frontend"].pop(((0, None),))
    fake.entries["frontend"][((999, None),)] = ("set_frontend_addr", {"addr": 0})
    with pytest.raises(FakeRpcError, match="table full"):
        tb.entry_add(t, [keys[0]], [datas[0]])


def test_unbound_client_is_refused():
    fake = FakeSwitch()
    gc = fake.client
    iface = gc.ClientInterface("localhost:50052", client_id=0, device_id=0)
    info = iface.bfrt_info_get()
    tb = info.table_get("frontend")
    with pytest.raises(FakeRpcError, match="not bound"):
        tb.entry_del(gc.Target())
    with pytest.raises(FakeRpcError, match="no BF Runtime server"):
        gc.ClientInterface("10.0.0.9:50052", client_id=0, device_id=0)


def test_the_fake_reads_declarations_from_the_p4(tmp_path):
    """Rename a key field in a copy of native/p4: the fake follows the copy."""
    dst = tmp_path / "p4"
    shutil.copytree(P4, dst)
    rewrite = dst / "rewrite.p4"
    rewrite.write_text(rewrite.read_text().replace('exact @name("index")',
                                                   'exact @name("backend_index")'))
    fake = FakeSwitch(top=dst / "miresga.p4")
    gc = fake.client
    info = gc.ClientInterface("localhost:50052").bfrt_info_get()
    tb = info.table_get("backend")
    tb.make_key([gc.KeyTuple("backend_index", 1)])
    with pytest.raises(KeyError, match="unknown key fields"):
        tb.make_key([gc.KeyTuple("index", 1)])


def test_the_fake_serves_tofino_2_too():
    fake = FakeSwitch(target=2)
    assert "t2na.p4" in fake.prog.system_includes
    assert set(fake.cp) == set(FakeSwitch().cp)
    assert Path(fake.top).name == "miresga.p4"
