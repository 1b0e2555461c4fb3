"""Commands that draw and collect the figures."""

from __future__ import annotations

import shutil
from pathlib import Path


def cmd_figure(a):
    from ..plots import draw

    try:
        draw(a.name, a.table, a.out)
    except ValueError as e:
        raise SystemExit(str(e)) from None


def cmd_collect_figures(a):
    from ..atomic import atomic_path

    with atomic_path(a.out, is_dir=True) as tmp:
        for p in map(Path, a.inputs):
            for f in [p, p.with_suffix(".pdf")]:
                if f.exists():
                    shutil.copy2(f, tmp / f.name)


def register(add) -> None:
    """Add this module's subcommands (`add(name, fn, help)` returns the subparser)."""
    s = add("figure", cmd_figure, "draw one figure")
    s.add_argument("name")
    s.add_argument("--table")
    s.add_argument("--out", required=True)

    s = add("collect-figures", cmd_collect_figures, "copy figures (PNG+PDF) into one folder")
    s.add_argument("--out", required=True)
    s.add_argument("inputs", nargs="+")
