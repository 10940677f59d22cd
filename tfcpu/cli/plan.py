"""``tfcpu plan``: lay out pinned instances (white paper Section 7) and print or script them."""

from __future__ import annotations

import argparse
import os
import stat

from tfcpu._io import atomic_write_text, check_writable
from tfcpu._render import print_rich
from tfcpu.cli.topology import read_topology
from tfcpu.errors import ConfigError
from tfcpu.plan import METHODS, InstancePlan


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "plan",
        help="lay out pinned instances (CPUs, threads, env, numactl/taskset prefix); write a launch script",
        description=(
            "Split the usable cores into instances that never span sockets, NUMA nodes or (when avoidable) "
            "L3 domains, and choose a pinning method that works here. --script must come last: everything "
            "after it is the command each instance runs."
        ),
    )
    p.add_argument("--root", default="/", help="plan for a captured tree (a directory or a capture .json)")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--instances", type=int, metavar="N", help="number of instances (equal sizes)")
    size.add_argument("--cores-per-instance", type=int, metavar="K", help="physical cores per instance")
    p.add_argument("--no-smt", action="store_true", help="one CPU per core: leave SMT siblings idle")
    p.add_argument("--no-memory-binding", action="store_true", help="do not bind memory to the NUMA node")
    p.add_argument("--method", choices=METHODS, help="force a pinning method instead of probing")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument(
        "--shard-arg",
        metavar="ARG",
        help='per-instance argument for --script: "--shard" appends the index; "-d subset{n}/" is a template',
    )
    p.add_argument("-o", "--output", metavar="FILE", help="write the --script to FILE (made executable)")
    p.add_argument(
        "--script",
        nargs=argparse.REMAINDER,
        metavar="CMD",
        help="print a bash script that starts CMD once per instance (must be the last option)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.output and args.script is not None:
        check_writable(args.output)
    topo = read_topology(args.root)
    plan = InstancePlan.for_topology(
        topo,
        instances=args.instances,
        cores_per_instance=args.cores_per_instance,
        smt=not args.no_smt,
        memory_binding=not args.no_memory_binding,
        method=args.method,
    )
    if args.script is not None:
        if not args.script:
            raise ConfigError("--script needs a command", hint="e.g. tfcpu plan --instances 2 --script python eval.py")
        text = plan.to_script(args.script, shard_arg=args.shard_arg)
        if args.output:
            atomic_write_text(args.output, text)
            mode = os.stat(args.output).st_mode
            os.chmod(args.output, mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            print(f"wrote {len(plan.instances)} instance(s) to {args.output}")
        else:
            print(text, end="")
        return 0
    if args.output or args.shard_arg:
        raise ConfigError("--output and --shard-arg only apply with --script")
    if args.json:
        print(plan.to_json(indent=2))
    else:
        print_rich(plan)
    return 0
