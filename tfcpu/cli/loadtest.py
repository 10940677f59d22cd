"""``tfcpu loadtest URL --model NAME``: closed-loop and open-loop load on a served model (`tfcpu.serve.loadtest`).

Prints a table per level (throughput, p50/p90/p99, errors by kind) and the highest throughput whose
p99 stays under ``--p99-ms``; ``--json`` prints the result as JSON; ``--plot`` writes latency against
throughput as a PNG (default ``tfcpu-loadtest.png``). Loopback targets only.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "loadtest",
        help="drive a served model with load (closed-loop concurrency sweep, open-loop rates); p99 and throughput",
        description="Load-test a model served over KServe v2 or TF Serving REST on this machine.",
    )
    p.add_argument("url", metavar="URL", help="the server, e.g. http://127.0.0.1:8000 (loopback only)")
    p.add_argument("--model", required=True, help="the model's name on the server")
    p.add_argument("--protocol", choices=("kserve", "tfserving"), default="kserve")
    p.add_argument(
        "--concurrency",
        default="1,2,4,8,16,32",
        metavar="N,N,...",
        help="closed-loop levels: clients sending back to back (default 1,2,4,8,16,32; '' to skip)",
    )
    p.add_argument("--rate", default="", metavar="R,R,...", help="open-loop levels: requests per second")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per level (default 10)")
    p.add_argument("--batch", type=int, default=1, help="rows per request (default 1)")
    p.add_argument("--p99-ms", type=float, default=100.0, help="the p99 target for the best level (default 100)")
    p.add_argument("--max-requests", type=int, default=100_000, help="requests per level at most")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds before a request is a timeout error")
    p.add_argument("--plot", default="tfcpu-loadtest.png", metavar="PNG", help="latency vs throughput chart")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--json-tensors",
        action="store_true",
        help="KServe: send tensors as JSON lists instead of the binary tensor extension (tritonclient's default)",
    )
    p.set_defaults(func=run)


def _numbers(text: str, what: str) -> list[float]:
    from tfcpu.errors import ConfigError

    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"bad {what} {text!r}", hint="numbers separated by commas, e.g. 1,2,4") from None


def run(args: argparse.Namespace) -> int:
    from tfcpu._plot import try_chart
    from tfcpu._render import print_rich
    from tfcpu.serve.loadtest import check_loopback, loadtest

    check_loopback(args.url)
    result = loadtest(
        args.url,
        args.model,
        protocol=args.protocol,
        concurrency=[int(c) for c in _numbers(args.concurrency, "--concurrency") if c == int(c)],
        rates=_numbers(args.rate, "--rate"),
        duration=args.duration,
        batch=args.batch,
        p99_ms=args.p99_ms,
        max_requests=args.max_requests,
        timeout=args.timeout,
        binary=not args.json_tensors,
    )
    chart = try_chart(lambda: result.plot(args.plot)) if args.plot else None
    if args.json:
        print(json.dumps({**result.to_dict(), "chart": chart.to_dict() if chart else None}, indent=2))
    else:
        print_rich(result)
        if chart is not None:
            print(chart.describe(), file=sys.stderr)
    return 0
