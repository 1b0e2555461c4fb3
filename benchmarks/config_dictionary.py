"""The benchmarks' `--config` and `--dictionary` arguments: one dictionary of a layered config,
with every default of its kind filled in as the workflow trains it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from diffdict.config import check, effective_dictionary, load_layered  # noqa: E402


def add_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--config", type=Path, nargs="+", default=[Path("config/config.yaml")], help="layered in order")
    ap.add_argument("--dictionary", default="sae", help="the config's dictionary to train (default: sae)")


def resolve(ap: argparse.ArgumentParser, a: argparse.Namespace) -> tuple[str, dict]:
    """(name, settings) of `--dictionary` in `--config`; an unknown name is refused with the valid ones."""
    config = check(load_layered(a.config))
    try:
        return a.dictionary, effective_dictionary(config, a.dictionary)
    except ValueError as e:
        ap.error(f"--dictionary: {e}")
