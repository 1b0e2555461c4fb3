"""Arguments several commands share: JSON settings, the model and site, the shapes world's annotator."""

from __future__ import annotations

import argparse
import json


def json_arg(s: str):
    """argparse type for JSON options; a bad value names where it breaks (argparse reports it)."""
    try:
        return json.loads(s)
    except json.JSONDecodeError as e:
        shown = s if len(s) <= 80 else s[:77] + "..."
        raise argparse.ArgumentTypeError(f"not JSON ({e.msg} at character {e.pos}): {shown!r}") from None


def model_arg(s: argparse.ArgumentParser) -> None:
    """--model and --exec: every model-running command."""
    s.add_argument("--model", type=json_arg, required=True, help="the config's model section (JSON)")
    s.add_argument(
        "--exec",
        type=json_arg,
        default={},
        help="execution settings merged into --model "
        "(device, cpu_offload): kept apart so that changing them reruns nothing",
    )


def model_and_site(s: argparse.ArgumentParser) -> None:
    """The settings every model-running, per-site command takes."""
    model_arg(s)
    s.add_argument("--site-name", required=True)
    s.add_argument("--site", type=json_arg, required=True, help="the site's settings (JSON)")


def annotator(path: str):
    """The shapes world's annotator (stored inside the toy model folder), or None."""
    if not path:
        return None
    from ..world.annotate import Annotator

    return Annotator.load(path)
