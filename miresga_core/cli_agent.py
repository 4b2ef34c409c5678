"""``miresga agent``: attach the back-end agent to an interface, show it, detach it.

    miresga agent --iface eth0 --secret-file /etc/miresga/agent.key [--mode native|generic]
    miresga agent --iface eth0 --status [--json]
    miresga agent --iface eth0 --detach
    miresga agent --iface eth0 --gc        # drop expired flows now (e.g. from cron)

Attaching returns at once: programs stay attached and maps pinned under
/sys/fs/bpf/miresga/<iface> until ``--detach``. The secret file holds the key(s) shared
with the controller (see miresga_core.agent.maps.read_secret_file). ``--netns NAME`` runs
the command inside a named network namespace (labs). Also runnable as
``python3 -m miresga_core.cli_agent`` until it is wired into ``miresga``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from .bpf import BpfError
from .errors import MiresgaError

__all__ = ["add_parser", "main", "run"]


def add_parser(subparsers: Any) -> None:
    """Register ``agent`` on the ``miresga`` CLI's subparsers."""
    p = subparsers.add_parser("agent", help="back-end agent (XDP + tc splicing)",
                              description=__doc__.split("\n\n")[0])
    _arguments(p)
    p.set_defaults(func=run)


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--iface", required=True, help="interface facing the switch")
    p.add_argument("--secret-file", help="key(s) shared with the controller (32 hex digits "
                   "per line: slot 0, optional slot 1)")
    p.add_argument("--mode", choices=("native", "generic"), default="native",
                   help="XDP attach mode (default native; generic works on any device)")
    p.add_argument("--idle-timeout", type=float, default=300.0, metavar="S",
                   help="seconds before an idle flow is forgotten (default 300)")
    p.add_argument("--grace", type=float, default=10.0, metavar="S",
                   help="seconds a closed flow keeps translating (default 10)")
    p.add_argument("--netns", metavar="NAME", help="run inside this network namespace")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--status", action="store_true", help="show attachment, counters, flows")
    what.add_argument("--detach", action="store_true", help="detach and unpin")
    what.add_argument("--gc", action="store_true",
                      help="remove flows closed past the grace period or idle too long")
    p.add_argument("--json", action="store_true", help="--status as JSON")


def _print_status(st: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(asdict(st), indent=2, sort_keys=True))
        return
    where = f"XDP {st.xdp_mode} prog {st.xdp_prog_id}, tc egress prog {st.tc_prog_id}"
    print(f"agent on {st.iface}: {'attached' if st.attached else 'NOT attached'} ({where})")
    if st.config:
        print(f"  key slots {st.config['key_slots']}, idle timeout {st.config['idle_timeout_s']}"
              f" s, grace {st.config['grace_s']} s")
    nonzero = {k: v for k, v in st.counters.items() if v}
    for name, value in sorted(nonzero.items()):
        print(f"  {name.lower():<16} {value}")
    print(f"  flows: {len(st.flows)}")
    for f in st.flows[:20]:
        print(f"    {f['client']} -> {f['backend']} {','.join(f['flags'])} "
              f"in {f['pkts_in']} pkts/{f['bytes_in']} B, out {f['pkts_out']} pkts/"
              f"{f['bytes_out']} B" + (f", ts_delta {f['ts_delta']:#x}"
                                       if "TS_DELTA" in f["flags"] else ""))


def run(args: argparse.Namespace) -> int:
    """Entry point of ``miresga agent``; returns the exit code."""
    from .agent import loader
    from .agent.maps import read_secret_file

    try:
        loader.check_privileges()
        if args.netns:
            loader.enter_netns(args.netns)
        if args.detach:
            found = loader.detach(args.iface)
            print(f"agent on {args.iface}: {'detached' if found else 'was not attached'}")
            return 0
        if args.gc:
            removed = loader.gc(args.iface)
            print(f"agent on {args.iface}: removed {removed['closed']} closed and "
                  f"{removed['idle']} idle flows")
            return 0
        if args.status:
            _print_status(loader.status(args.iface), args.json)
            return 0
        if not args.secret_file:
            raise MiresgaError("--secret-file is required to attach")
        keys = read_secret_file(args.secret_file)
        st = loader.attach(args.iface, keys, mode=args.mode, idle_timeout_s=args.idle_timeout,
                           grace_s=args.grace)
        _print_status(st, args.json)
        return 0
    except (MiresgaError, BpfError) as exc:
        print(f"miresga agent: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="miresga agent", description=__doc__.split("\n\n")[0])
    _arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
