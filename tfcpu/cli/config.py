"""``tfcpu config``: the white paper's session settings for this machine, and what takes effect."""

from __future__ import annotations

import argparse
import json

from tfcpu._render import print_rich
from tfcpu.cli.topology import read_topology
from tfcpu.session.config import SessionConfig
from tfcpu.session.precision import ONEDNN


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "config",
        help="show thread/OpenMP/oneDNN settings and which take effect on the installed TensorFlow",
        description=(
            "Derive the white paper's Section 5 settings from the CPU topology and explain, per setting, "
            "whether the installed TensorFlow honours it."
        ),
    )
    p.add_argument("--root", default="/", help="read a captured tree (a directory or a capture .json)")
    p.add_argument("--intra-op-threads", type=int, metavar="N", help="override intra-op threads")
    p.add_argument("--inter-op-threads", type=int, metavar="N", help="override inter-op threads")
    p.add_argument("--omp-threads", type=int, metavar="N", help="override OMP_NUM_THREADS")
    p.add_argument("--onednn", choices=("on", "off"), help=f"set {ONEDNN}=1/0")
    p.add_argument("--no-trust-env", action="store_true", help="ignore variables already set in the environment")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON instead of a table")
    out.add_argument(
        "--env",
        action="store_true",
        help='print `export` lines for a shell (eval "$(...)"); settings that take no effect on this runtime '
        "are printed commented out, with the reason",
    )
    p.set_defaults(func=run)


def build(args: argparse.Namespace) -> SessionConfig:
    config = SessionConfig.for_topology(read_topology(args.root))
    if args.intra_op_threads is not None:
        config = config.with_intra_op_threads(args.intra_op_threads)
    if args.inter_op_threads is not None:
        config = config.with_inter_op_threads(args.inter_op_threads)
    if args.omp_threads is not None:
        config = config.with_omp_threads(args.omp_threads)
    if args.onednn is not None:
        config = config.with_onednn(args.onednn == "on")
    if args.no_trust_env:
        config = config.with_trust_env(False)
    return config


def run(args: argparse.Namespace) -> int:
    config = build(args)
    explanation = config.explain()
    if args.env:
        # Only what takes effect on this runtime is exported; the rest stays visible, commented out.
        for line in explanation.shell_exports():
            print(line)
        return 0
    if args.json:
        print(json.dumps(explanation.to_dict(), indent=2))
    else:
        print_rich(explanation)
    return 0
