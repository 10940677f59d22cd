"""The ``tfcpu`` command line: a thin layer over the API, one subcommand per stage."""

from tfcpu.cli.main import main

__all__ = ["main"]
