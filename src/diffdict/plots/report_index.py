"""The results' entry page, ``results/report/index.html``: every feature browser and figure.

One static page, no server, no script or style from elsewhere, so it opens from ``file://``: in
the shapes world the ground-truth checks first (`diffdict.metrics.ground_truth`: does the run
tell a trained SAE from random directions?), a table of the feature browsers (rows sites,
columns dictionaries) and the figures as thumbnails with the lead of their caption. Every link
is relative to the page, so ``results/`` can be moved or zipped whole.

Test hooks (as in ``browser``): after load every ``<img>`` carries ``data-loaded`` ("1" or "0")
and ``<body>`` carries ``data-ready``.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from ..atomic import atomic_path


@dataclass(frozen=True)
class Browser:
    """One site x dictionary feature browser; `page` is its ``index.html``."""

    site: str
    dictionary: str
    page: Path


@dataclass(frozen=True)
class Figure:
    """One figure: `image` (PNG) and `pdf` are where the page links them."""

    name: str
    image: Path
    summary: str = ""
    pdf: Path | None = None


def caption_summary(rst: str) -> str:
    """The lead of a figure caption (``workflow/report/*.rst``): its bold title when it opens
    with one, else its first sentence; inline rst markup removed."""
    text = " ".join(rst.split())
    bold = re.match(r"\*\*(.+?)\*\*", text)
    lead = bold.group(1) if bold else re.split(r"(?<=\.)\s", text, maxsplit=1)[0]
    return re.sub(r"``(.+?)``|\*(.+?)\*", lambda m: m.group(1) or m.group(2), lead).strip()


def browsers_from_dirs(dirs: Iterable[str | os.PathLike]) -> list[Browser]:
    """Browsers from their folders, ``.../{model}/{site}/{dict}`` (as the ``browser`` rule
    writes them): site and dictionary are read from the path."""
    out = []
    for d in map(Path, dirs):
        page = d / "index.html"
        if not page.is_file():
            raise FileNotFoundError(
                f"{d}: not a feature browser (no index.html); expected the folder "
                "the browser stage writes, .../{model}/{site}/{dict}/"
            )
        out.append(Browser(site=d.parent.name, dictionary=d.name, page=page))
    return out


def figures_from_paths(
    paths: Iterable[str | os.PathLike],
    collected_dir: str | os.PathLike | None = None,
    captions: Mapping[str, str] | None = None,
) -> list[Figure]:
    """Figures from their PNGs. With `collected_dir`, links point at the copy of each figure
    there (``collect-figures`` copies a PNG and the PDF beside it under the same names).
    `captions` maps a figure name (the file stem) to its rst caption."""
    out = []
    for p in map(Path, paths):
        where = Path(collected_dir) if collected_dir is not None else p.parent
        pdf = p.with_suffix(".pdf")
        out.append(
            Figure(
                name=p.stem,
                image=where / p.name,
                summary=caption_summary((captions or {}).get(p.stem, "")),
                pdf=where / pdf.name if pdf.is_file() else None,
            )
        )
    return out


def _href(target: Path, base: Path) -> str:
    """`target` relative to the folder `base`, URL-quoted and escaped for an attribute."""
    rel = Path(os.path.relpath(target, base)).as_posix()
    return html.escape(quote(rel), quote=True)


def _browser_table(browsers: Sequence[Browser], base: Path) -> str:
    if not browsers:
        return '<p class="none">no feature browsers</p>'
    cells = {}
    for b in browsers:
        if (b.site, b.dictionary) in cells:
            raise ValueError(f"two feature browsers for site '{b.site}', dictionary '{b.dictionary}'")
        cells[b.site, b.dictionary] = b
    sites = list(dict.fromkeys(b.site for b in browsers))  # first-seen order: the config's
    dicts = list(dict.fromkeys(b.dictionary for b in browsers))
    head = "<tr><th>site</th>" + "".join(f"<th>{html.escape(d)}</th>" for d in dicts) + "</tr>"
    rows = []
    for s in sites:
        tds = []
        for d in dicts:
            b = cells.get((s, d))  # e.g. MLP neurons exist only at mlp sites
            tds.append(
                f'<td><a href="{_href(b.page, base)}">{html.escape(d)}</a></td>' if b else '<td class="none">–</td>'
            )
        rows.append(f"<tr><th>{html.escape(s)}</th>{''.join(tds)}</tr>")
    return f'<table class="browsers">{head}{"".join(rows)}</table>'


def _checks_table(checks: pd.DataFrame) -> str:
    """The ground-truth checks, one row each: value [CI] against threshold, null and ceiling."""
    from ..metrics.ground_truth import LEGEND, NO_CHECKS, RULE, budget_text, number, rule_of, value_text

    if checks.empty:
        return f'<p class="none">{html.escape(NO_CHECKS)}</p>'
    head = "".join(f"<th>{h}</th>" for h in ("site", "dictionary", "check", "value [CI]", "threshold",
                                               "null (random)", "ceiling (probe)",
                                               "latents per token (dictionary / random)", "passed"))  # fmt: skip
    rows = []
    for _, r in checks.iterrows():
        cells = (r["site"], r["dict"], r["check"], value_text(r), RULE[rule_of(r["check"])], number(r["null"]),
                 number(r["ceiling"]), budget_text(r))  # fmt: skip
        verdict = '<td class="pass">yes</td>' if r["passed"] else '<td class="fail">no</td>'
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + verdict + "</tr>")
    n_pass = int(checks["passed"].sum())
    lead = f'<p class="verdict"><b>{n_pass} of {len(checks)} checks pass.</b> {html.escape(LEGEND)}</p>'
    return f'{lead}<table class="checks"><tr>{head}</tr>{"".join(rows)}</table>'


def _figure(f: Figure, base: Path) -> str:
    name, href = html.escape(f.name), _href(f.image, base)
    pdf = f' · <a href="{_href(f.pdf, base)}">PDF</a>' if f.pdf is not None else ""
    summary = f" — {html.escape(f.summary)}" if f.summary else ""
    return (
        f'<figure id="fig-{name}"><a href="{href}"><img src="{href}" alt="{name}"></a>'
        f"<figcaption><b>{name}</b>{summary}{pdf}</figcaption></figure>"
    )


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; padding: 1em; max-width: 80em;
       background: #f6f6f4; color: #222; }}
h1 {{ font-size: 1.3em; margin: 0 0 .2em; }} h2 {{ font-size: 1.1em; margin: 1.2em 0 .4em; }}
.model {{ color: #555; margin: 0; }}
table {{ border-collapse: collapse; background: #fff; }}
td, th {{ border: 1px solid #ddd; padding: .3em .7em; text-align: left; }}
.none {{ color: #999; }}
.pass {{ color: #1a7f37; }} .fail {{ color: #b42318; font-weight: bold; }}
.figures {{ display: flex; flex-wrap: wrap; gap: 1em; }}
figure {{ background: #fff; border: 1px solid #ddd; border-radius: 6px; margin: 0; padding: .5em; width: 22em; }}
figure img {{ width: 100%; display: block; }}
figcaption {{ font-size: .9em; margin-top: .3em; }}
</style></head>
<body>
<h1>{title}</h1>
<p class="model">model <b>{model}</b></p>
{checks}<h2>Feature browsers</h2>
{browsers}
<h2>Figures</h2>
{figures}
<script>
window.addEventListener("load", function () {{
  Array.prototype.forEach.call(document.images, function (img) {{
    img.dataset.loaded = img.complete && img.naturalWidth > 0 ? "1" : "0";
  }});
  document.body.dataset.ready = "1";
}});
</script>
</body></html>
"""


def render_index(
    model: str,
    browsers: Sequence[Browser],
    figures: Sequence[Figure],
    base: str | os.PathLike,
    checks: pd.DataFrame | None = None,
) -> str:
    """The page's HTML; links are relative to `base`, the folder the page will live in.
    `checks`: the ground-truth checks (``tables/ground_truth.csv``), shown first when given."""
    base = Path(base)
    figs = (
        '<div class="figures">' + "\n".join(_figure(f, base) for f in figures) + "</div>"
        if figures
        else '<p class="none">no figures</p>'
    )
    return PAGE.format(
        title=html.escape(f"diffdict · {model}"),
        model=html.escape(model),
        checks=f"<h2>Ground-truth checks</h2>\n{_checks_table(checks)}\n" if checks is not None else "",
        browsers=_browser_table(browsers, base),
        figures=figs,
    )


def write_index(
    out: str | os.PathLike,
    model: str,
    browsers: Sequence[Browser],
    figures: Sequence[Figure],
    checks: pd.DataFrame | None = None,
) -> Path:
    """Render the page for its place `out` and write it atomically; returns `out`."""
    out = Path(out)
    page = render_index(model, browsers, figures, base=out.parent, checks=checks)
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out
