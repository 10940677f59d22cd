"""Entry point of the ``tfcpu`` command.

Exit codes: 0 success, 1 a failure while doing the work, 2 a user error (bad flag, bad
input, unknown name), 128 + the signal's number when stopped (130 SIGINT, 143 SIGTERM, 129 SIGHUP).
Errors print one line and a hint; ``--debug`` shows the traceback.

Every command runs inside `tfcpu._stop.stop_signals`: SIGTERM and SIGHUP unwind like Ctrl-C, so
children's process groups are ended and temp dirs removed before the exit.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Sequence

from tfcpu import __version__
from tfcpu._stop import Stopped, stop_signals
from tfcpu._stop import exit_code as stop_exit_code
from tfcpu.errors import TfcpuError

__all__ = ["main"]

# Each subcommand module exposes register(subparsers) and sets a `func` default.
_SUBCOMMANDS = (
    "tfcpu.cli.demo",
    "tfcpu.cli.topology",
    "tfcpu.cli.config",
    "tfcpu.cli.plan",
    "tfcpu.cli.inspect",
    "tfcpu.cli.optimize",
    "tfcpu.cli.quantize",
    "tfcpu.cli.bench",
    "tfcpu.cli.launch",
    "tfcpu.cli.tune",
    "tfcpu.cli.serve",
    "tfcpu.cli.loadtest",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="tfcpu",
        description="Make TensorFlow inference on x86 CPUs as fast as the hardware allows.",
    )
    parser.add_argument("--version", action="version", version=f"tfcpu {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _SUBCOMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # The command line is a program, not a library: keep TensorFlow's and INC's start-up chatter
    # (absl's pre-init notice, "oneDNN custom operations", CUDA probes) out of the user's terminal,
    # before anything imports TensorFlow; --debug lets all of it through. The one place: precision.py.
    from tfcpu.session.precision import quiet_tensorflow

    quiet_tensorflow(debug=args.debug)
    if not args.debug:
        for noisy in ("tensorflow", "absl", "neural_compressor"):
            logging.getLogger(noisy).setLevel(logging.ERROR)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        with stop_signals():
            return int(func(args) or 0)
    except TfcpuError as exc:
        if args.debug:
            raise
        print(f"tfcpu {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP turned into Stopped
        how = f" ({exc.signal_name})" if isinstance(exc, Stopped) and exc.signum != signal.SIGINT else ""
        with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
            print(f"tfcpu {args.command}: interrupted{how}", file=sys.stderr)
        return stop_exit_code(exc)
    except Exception as exc:
        if args.debug:
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"tfcpu {args.command}: internal error: {type(exc).__name__}: {first}\n"
            "  hint: run again with --debug for the traceback, and report it if it looks like a tfcpu bug",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
