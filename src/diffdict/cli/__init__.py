"""Command line: one subcommand per workflow rule.

Rules pass their settings as canonical JSON (`--model '{...}'`), so each job sees exactly the
settings it depends on and Snakemake's params trigger reruns only what changed. Every
subcommand writes its outputs atomically. The commands live by stage, each module beside the
arguments it registers: `data`, `dictionaries`, `interp`, `ground_truth`, `figures`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from . import data, dictionaries, figures, ground_truth, interp

STAGES = (data, dictionaries, interp, ground_truth, figures)  # the order `diffdict --help` lists them in


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("diffdict")
    except PackageNotFoundError:  # a source tree on sys.path, not installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="diffdict", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, fn, help):
        s = sub.add_parser(name, help=help, description=help)
        s.set_defaults(fn=fn)
        return s

    for stage in STAGES:
        stage.register(add)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "exec", None):
        args.model = {**args.model, **args.exec}
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from ..config import ConfigError

    try:
        args.fn(args)
    except ConfigError as e:
        print(f"diffdict: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:  # a path the user gave: one line naming it (--verbose: the traceback)
        if args.verbose:
            raise
        print(f"diffdict: {f'{e.strerror}: {e.filename}' if e.filename else e}", file=sys.stderr)
        return 2
    return 0
