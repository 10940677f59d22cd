"""``tfcpu launch``: run any command as pinned copies, one per instance (the paper's multisocket.sh)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from tfcpu.cli._common import add_layout_args, plan_from_args
from tfcpu.cli._runtime_args import add_runtime_args, runtime_env
from tfcpu.errors import ConfigError
from tfcpu.session.xeon import preload_env


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "launch",
        help="run a command once per pinned instance, with thread variables and a shard hint",
        description="Start COMMAND once per instance of the plan, pinned to the instance's CPUs, with "
        "TFCPU_INSTANCE_INDEX, TFCPU_NUM_INSTANCES, TFCPU_SHARD, TFCPU_CPUS and the thread variables in "
        "its environment. Output is prefixed with [i]. Exits non-zero if any copy failed.",
        usage="tfcpu launch (--instances N | --cores-per-instance K) [--timeout S] [--json] [--allocator A] "
        "[--frozen-weights] -- COMMAND ...",
    )
    add_layout_args(p)
    p.add_argument("--timeout", type=float, help="kill every copy still running after this many seconds")
    p.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    add_runtime_args(p)
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="command", help="the command, after --")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tfcpu.runtime.launch import launch

    command = list(args.argv)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise ConfigError("no command given", hint="tfcpu launch --instances 2 -- python script.py")
    plan = plan_from_args(args)
    env, allocator = runtime_env(args, children=True)
    env.update(preload_env(allocator, os.environ, "tfcpu launch --allocator"))
    result = launch(command, plan, timeout=args.timeout, env=env, output=sys.stdout)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    for copy in result.failed:
        print(
            f"tfcpu launch: copy {copy.index} (CPUs {list(copy.cpus)}) failed: {copy.reason()}",
            file=sys.stderr,
        )
    return result.exit_code
