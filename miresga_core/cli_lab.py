"""``miresga lab up|down|status``: the namespace lab of docs/lab.md.

``up`` builds clients, the XDP switch, front-ends and backends as network namespaces
joined by veths (idempotent); ``down`` removes them; ``status`` shows hosts, switch ports
with their XDP program, and the switch's non-zero counters.
"""

from __future__ import annotations

import argparse

from .api import parse_address
from .errors import MiresgaError

__all__ = ["add_parser"]


def _spec(args: argparse.Namespace):
    from .lab import LabError, LabSpec

    kwargs = {"prefix": args.prefix}
    if getattr(args, "clients", None) is not None:
        vips = tuple((a.host, a.port) for a in (parse_address(v, 80) for v in args.vip or ()))
        kwargs.update(clients=args.clients, frontends=args.frontends, backends=args.backends,
                      switch=not args.no_switch, xdp_mode=args.xdp_mode,
                      backend_port=args.backend_port)
        if vips:
            kwargs["vips"] = vips
    try:
        return LabSpec(**kwargs)
    except ValueError as exc:
        raise LabError(str(exc)) from None


def _up(args: argparse.Namespace) -> int:
    from .lab import up

    print(up(_spec(args)))
    return 0


def _down(args: argparse.Namespace) -> int:
    from .lab import down

    print(down(_spec(args)))
    return 0


def _status(args: argparse.Namespace) -> int:
    from .lab import load_spec, status

    spec = load_spec(args.prefix) or _spec(args)
    print(status(spec))
    return 0


def _wrap(func):
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except (ValueError, OSError) as exc:
            raise MiresgaError(f"lab: {exc}") from exc
    return run


def add_parser(subparsers) -> None:
    lab = subparsers.add_parser("lab", help="build or remove the namespace lab",
                                description=__doc__.split("\n\n")[1])
    sub = lab.add_subparsers(dest="lab_command", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--prefix", default="ml-",
                        help="namespace prefix (default ml-; up to 6 characters then '-')")

    up = sub.add_parser("up", parents=[common], help="create the lab (idempotent)")
    up.add_argument("--clients", type=int, default=1)
    up.add_argument("--frontends", type=int, default=1)
    up.add_argument("--backends", type=int, default=1)
    up.add_argument("--vip", action="append", metavar="IP[:PORT]",
                    help="a VIP service (repeatable; default 10.77.255.1:80)")
    up.add_argument("--backend-port", type=int, default=8080)
    up.add_argument("--xdp-mode", choices=("native", "generic"), default="native")
    up.add_argument("--no-switch", action="store_true",
                    help="namespaces and links only, no XDP switch program")
    up.set_defaults(func=_wrap(_up))

    down = sub.add_parser("down", parents=[common], help="remove the lab")
    down.set_defaults(func=_wrap(_down))

    st = sub.add_parser("status", parents=[common], help="show the lab")
    st.set_defaults(func=_wrap(_status))
