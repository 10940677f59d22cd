"""Write docs/cli.md from the argparse definitions (``python docs/gen_cli.py``).

tests/unit/test_docs.py fails when the committed page is out of date.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

HERE = Path(__file__).parent


def render() -> str:
    os.environ["COLUMNS"] = "100"
    from tfcpu.cli.main import build_parser

    parser = build_parser()
    parts = [
        "# CLI reference\n",
        "Every subcommand is a thin layer over the library. Exit codes: 0 success, 1 a failure while "
        "doing the work, 2 a user error (bad flag, bad input, unknown name), 128 + the signal when stopped "
        "(130 SIGINT, 143 SIGTERM, 129 SIGHUP: children's process groups ended, temp dirs removed; see "
        "security.md). Errors print one line and a hint; add `--debug` (before the subcommand) for the "
        "traceback.\n",
        "```text\n" + parser.format_help().rstrip() + "\n```\n",
    ]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        p.prog = f"tfcpu {name}"
        parts.append(f"## tfcpu {name}\n\n```text\n{p.format_help().rstrip()}\n```\n")
    return "\n".join(parts)


if __name__ == "__main__":
    (HERE / "cli.md").write_text(render())
    sys.exit(0)
