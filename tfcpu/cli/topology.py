"""``tfcpu topology``: show what tfcpu reads about this machine's CPUs."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from tfcpu._io import atomic_write_text, check_writable
from tfcpu._render import print_rich
from tfcpu.errors import ConfigError
from tfcpu.topology import Topology, capture, materialise


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "topology",
        help="show sockets, NUMA nodes, cores, SMT siblings, CPU budget and ISA",
        description="Read the CPU topology from sysfs/procfs/cgroupfs and print it.",
    )
    p.add_argument("--root", default="/", help="read a captured tree (a directory or a capture .json)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--tree", action="store_true", help="print only the lstopo-like tree")
    p.add_argument("--capture", metavar="FILE", help="save the files read into FILE (JSON) for a bug report")
    p.set_defaults(func=run)


def read_topology(root: str) -> Topology:
    """The Topology under ``root``: ``/``, a captured directory tree, or a capture ``.json``.

    Shared by every subcommand that takes ``--root``.
    """
    path = Path(root)
    if path.is_file():
        with tempfile.TemporaryDirectory(prefix="tfcpu-topo-") as tmp:
            materialise(path, tmp)
            topo = Topology.detect(tmp)
            return Topology.from_dict({**topo.to_dict(), "root": str(path)})
    if not path.is_dir():
        raise ConfigError("topology root not found", where=root, hint="pass a directory or a capture .json")
    return Topology.detect(root)


def run(args: argparse.Namespace) -> int:
    if args.capture:
        if os.path.isfile(args.root):
            raise ConfigError("--capture needs a directory root", where=args.root)
        check_writable(args.capture)
        data = capture(args.root, description="captured by tfcpu topology --capture")
        atomic_write_text(args.capture, json.dumps(data, indent=1) + "\n")
        print(f"wrote {len(data['files'])} files to {args.capture}")
        return 0
    topo = read_topology(args.root)
    if args.json:
        print(topo.to_json(indent=2))
    elif args.tree:
        from tfcpu.topology.render import tree_lines

        print("\n".join(tree_lines(topo)))
    else:
        print_rich(topo)
    return 0
