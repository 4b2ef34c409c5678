"""ctypes declarations for the parts of the system libbpf (libbpf.so.1, >= 1.1) we use.

Private module: the rest of :mod:`miresga_core.bpf` calls these; nobody else should.
Prototypes and struct layouts follow the installed headers ``/usr/include/bpf/libbpf.h``
and ``/usr/include/bpf/bpf.h`` of libbpf 1.1 (Debian bookworm's libbpf-dev). libbpf 1.x
reports errors as a negative errno return (ints) or NULL plus ``errno`` (pointers), which is
what :func:`check` and :func:`check_ptr` turn into :class:`BpfError`.

Every ``*_opts`` struct starts with ``sz``; libbpf uses it to accept older and newer callers,
so we always set it to ``ctypes.sizeof`` of our declaration.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from ctypes import (
    POINTER,
    Structure,
    c_bool,
    c_char,
    c_char_p,
    c_int,
    c_size_t,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)

__all__ = [
    "BpfError", "MapInfo", "ObjectOpenOpts", "TcHook", "TcOpts", "TestRunOpts",
    "XdpAttachOpts", "XdpQueryOpts", "check", "check_ptr", "lib",
]


class BpfError(OSError):
    """A libbpf call failed. ``errno`` holds the positive error code; str() says which call."""

    def __init__(self, err: int, what: str, detail: str = "") -> None:
        msg = f"{what}: {os.strerror(err)} (errno {err})"
        if detail:
            msg += "\n" + detail
        super().__init__(err, msg)
        self.what = what
        self.detail = detail

    def __str__(self) -> str:
        return str(self.args[1])


class ObjectOpenOpts(Structure):
    """``struct bpf_object_open_opts`` (libbpf.h). The unnamed ``__u32 :32`` is ``_pad0``."""

    _fields_ = [
        ("sz", c_size_t),
        ("object_name", c_char_p),
        ("relaxed_maps", c_bool),
        ("pin_root_path", c_char_p),
        ("_pad0", c_uint32),
        ("kconfig", c_char_p),
        ("btf_custom_path", c_char_p),
        ("kernel_log_buf", c_void_p),
        ("kernel_log_size", c_size_t),
        ("kernel_log_level", c_uint32),
    ]


class TestRunOpts(Structure):
    """``struct bpf_test_run_opts`` (bpf.h)."""

    __test__ = False  # not a pytest class, despite the name

    _fields_ = [
        ("sz", c_size_t),
        ("data_in", c_void_p),
        ("data_out", c_void_p),
        ("data_size_in", c_uint32),
        ("data_size_out", c_uint32),
        ("ctx_in", c_void_p),
        ("ctx_out", c_void_p),
        ("ctx_size_in", c_uint32),
        ("ctx_size_out", c_uint32),
        ("retval", c_uint32),
        ("repeat", c_int),
        ("duration", c_uint32),
        ("flags", c_uint32),
        ("cpu", c_uint32),
        ("batch_size", c_uint32),
    ]


class XdpAttachOpts(Structure):
    """``struct bpf_xdp_attach_opts`` (libbpf.h)."""

    _fields_ = [("sz", c_size_t), ("old_prog_fd", c_int)]


class XdpQueryOpts(Structure):
    """``struct bpf_xdp_query_opts`` (libbpf.h)."""

    _fields_ = [
        ("sz", c_size_t),
        ("prog_id", c_uint32),
        ("drv_prog_id", c_uint32),
        ("hw_prog_id", c_uint32),
        ("skb_prog_id", c_uint32),
        ("attach_mode", c_uint8),
    ]


class TcHook(Structure):
    """``struct bpf_tc_hook`` (libbpf.h); ``attach_point`` is BPF_TC_INGRESS=1 / EGRESS=2."""

    _fields_ = [
        ("sz", c_size_t),
        ("ifindex", c_int),
        ("attach_point", c_int),
        ("parent", c_uint32),
    ]


class TcOpts(Structure):
    """``struct bpf_tc_opts`` (libbpf.h)."""

    _fields_ = [
        ("sz", c_size_t),
        ("prog_fd", c_int),
        ("flags", c_uint32),
        ("prog_id", c_uint32),
        ("handle", c_uint32),
        ("priority", c_uint32),
    ]


class MapInfo(Structure):
    """The leading part of ``struct bpf_map_info`` (linux/bpf.h); the kernel fills what fits."""

    _fields_ = [
        ("type", c_uint32),
        ("id", c_uint32),
        ("key_size", c_uint32),
        ("value_size", c_uint32),
        ("max_entries", c_uint32),
        ("map_flags", c_uint32),
        ("name", c_char * 16),
    ]


def _load() -> ctypes.CDLL:
    name = ctypes.util.find_library("bpf") or "libbpf.so.1"
    try:
        so = ctypes.CDLL(name, use_errno=True)
    except OSError as exc:  # pragma: no cover - depends on the machine
        raise BpfError(errno.ENOENT, "loading libbpf.so.1",
                       "install libbpf (Debian: apt install libbpf1 libbpf-dev)") from exc
    protos: dict[str, tuple[object, list[object]]] = {
        # object life cycle
        "bpf_object__open_file": (c_void_p, [c_char_p, POINTER(ObjectOpenOpts)]),
        "bpf_object__load": (c_int, [c_void_p]),
        "bpf_object__close": (None, [c_void_p]),
        "bpf_object__find_program_by_name": (c_void_p, [c_void_p, c_char_p]),
        "bpf_object__find_map_by_name": (c_void_p, [c_void_p, c_char_p]),
        "bpf_object__next_program": (c_void_p, [c_void_p, c_void_p]),
        "bpf_object__next_map": (c_void_p, [c_void_p, c_void_p]),
        # programs
        "bpf_program__name": (c_char_p, [c_void_p]),
        "bpf_program__fd": (c_int, [c_void_p]),
        "bpf_program__type": (c_int, [c_void_p]),
        "bpf_program__pin": (c_int, [c_void_p, c_char_p]),
        "bpf_program__unpin": (c_int, [c_void_p, c_char_p]),
        # maps (object side)
        "bpf_map__name": (c_char_p, [c_void_p]),
        "bpf_map__fd": (c_int, [c_void_p]),
        "bpf_map__type": (c_int, [c_void_p]),
        "bpf_map__key_size": (c_uint32, [c_void_p]),
        "bpf_map__value_size": (c_uint32, [c_void_p]),
        "bpf_map__max_entries": (c_uint32, [c_void_p]),
        "bpf_map__set_max_entries": (c_int, [c_void_p, c_uint32]),
        "bpf_map__reuse_fd": (c_int, [c_void_p, c_int]),
        "bpf_map__pin": (c_int, [c_void_p, c_char_p]),
        "bpf_map__unpin": (c_int, [c_void_p, c_char_p]),
        # low level (fd side)
        "bpf_map_lookup_elem": (c_int, [c_int, c_void_p, c_void_p]),
        "bpf_map_update_elem": (c_int, [c_int, c_void_p, c_void_p, c_uint64]),
        "bpf_map_delete_elem": (c_int, [c_int, c_void_p]),
        "bpf_map_get_next_key": (c_int, [c_int, c_void_p, c_void_p]),
        "bpf_obj_pin": (c_int, [c_int, c_char_p]),
        "bpf_obj_get": (c_int, [c_char_p]),
        "bpf_obj_get_info_by_fd": (c_int, [c_int, c_void_p, POINTER(c_uint32)]),
        "bpf_prog_test_run_opts": (c_int, [c_int, POINTER(TestRunOpts)]),
        # attach points
        "bpf_xdp_attach": (c_int, [c_int, c_int, c_uint32, POINTER(XdpAttachOpts)]),
        "bpf_xdp_detach": (c_int, [c_int, c_uint32, POINTER(XdpAttachOpts)]),
        "bpf_xdp_query": (c_int, [c_int, c_int, POINTER(XdpQueryOpts)]),
        "bpf_tc_hook_create": (c_int, [POINTER(TcHook)]),
        "bpf_tc_hook_destroy": (c_int, [POINTER(TcHook)]),
        "bpf_tc_attach": (c_int, [POINTER(TcHook), POINTER(TcOpts)]),
        "bpf_tc_detach": (c_int, [POINTER(TcHook), POINTER(TcOpts)]),
        "bpf_tc_query": (c_int, [POINTER(TcHook), POINTER(TcOpts)]),
        "libbpf_set_print": (c_void_p, [c_void_p]),
    }
    for fname, (restype, argtypes) in protos.items():
        fn = getattr(so, fname)
        fn.restype = restype
        fn.argtypes = argtypes
    # libbpf prints warnings we turn into exceptions anyway (and expected ones, such as
    # "exclusivity flag on" when clsact exists); MIRESGA_LIBBPF_DEBUG=1 keeps its output.
    if not os.environ.get("MIRESGA_LIBBPF_DEBUG"):
        so.libbpf_set_print(None)
    return so


lib = _load()


def check(ret: int, what: str, detail: str = "") -> int:
    """Return ``ret`` when >= 0, else raise :class:`BpfError` with errno ``-ret``."""
    if ret < 0:
        raise BpfError(-ret, what, detail)
    return ret


def check_ptr(ptr: int | None, what: str, detail: str = "") -> int:
    """Return a non-NULL pointer, else raise :class:`BpfError` from ``errno``."""
    if not ptr:
        raise BpfError(ctypes.get_errno() or errno.EINVAL, what, detail)
    return ptr
