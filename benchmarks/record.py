"""A benchmark's record: a Markdown page headed by the command that wrote it, beside its rows as CSV."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from diffdict.atomic import write_table, write_text  # noqa: E402


def write_record(out: Path, title: str, body: list[str], rows: pd.DataFrame | None = None) -> None:
    """Write `out` (Markdown: `title`, the command line, then `body`'s lines) and, given `rows`, the
    CSV beside it; both atomically, so an interrupted run leaves the last record whole. Prints the page."""
    if rows is not None:
        write_table(out.with_suffix(".csv"), rows)
    write_text(out, "\n".join([f"# {title}", "", f"`python {shlex.join(sys.argv)}`", "", *body]))
    print(out.read_text())
