"""A static HTML feature browser per dictionary: one page, no server, no CDN.

Each feature shows its card (top activating images with heatmaps), its explanation and scores,
its steering row and, for ITDA, the real token its atom was taken from. A search box filters
features by explanation text (every word must occur), client-side in vanilla JS, so the page
works opened straight from ``file://``. Images are copied next to the page (``cards/``,
``steering/``) and referenced by relative paths: the folder can be moved or zipped whole.

Test hooks: ``window.diffdictSearch(query)`` filters and returns the number of matches; the page
reads an initial query from ``#q=...``; after load every ``<img>`` carries ``data-loaded``
("1" or "0") and ``data-natural-width``, and ``<body>`` carries ``data-ready``, ``data-query`` and
``data-matches``.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import atomic_path
from ..filenames import feature_file

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
SCORE_ORDER = ("balanced_accuracy", "auroc", "score")


def index_images(folder: str | os.PathLike | None) -> dict[int, Path]:
    """``{feature: image}`` for the images in `folder`, keyed by the last number in each file
    name (``feature_00012.png``, ``12.png`` and ``f12_card.png`` all mean feature 12)."""
    if folder is None:
        return {}
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    out: dict[int, Path] = {}
    for p in sorted(folder.iterdir()):
        nums = re.findall(r"\d+", p.stem)
        if p.suffix.lower() in IMAGE_SUFFIXES and nums:
            f = int(nums[-1])
            if f in out:
                raise ValueError(f"{folder}: both {out[f].name} and {p.name} look like feature {f}")
            out[f] = p
    return out


def _publish(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)  # cheap for thousands of cards; falls back across filesystems
    except OSError:
        shutil.copyfile(src, dst)


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return "–" if np.isnan(v) else f"{v:.3g}"
    return html.escape(str(v))


def _scores(row: pd.Series, columns: list[str]) -> str:
    return " · ".join(f"{c.replace('_', ' ')} <b>{_fmt(row[c])}</b>" for c in columns)


def _provenance(rows: pd.DataFrame) -> str:
    if rows.empty:
        return ""
    cols = [c for c in rows.columns if c != "feature"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r[c])}</td>" for c in cols) + "</tr>" for _, r in rows.iterrows())
    return (
        f'<details class="prov" open><summary>atom provenance</summary><table><tr>{head}</tr>{body}</table></details>'
    )


def _card(row: pd.Series, score_cols: list[str], card: str | None, steer: str | None, prov: str) -> str:
    f = int(row["feature"])
    expl = str(row.get("explanation", "") or "")
    search = html.escape(f"{expl} feature {f} #{f}".lower(), quote=True)
    img = (
        f'<img class="card" src="{html.escape(card)}" alt="card of feature {f}">'
        if card
        else '<p class="missing">no card</p>'
    )
    steering = (
        f'<figure class="steer"><figcaption>steering (columns: strength x mean token norm)</figcaption>'
        f'<img src="{html.escape(steer)}" alt="steering of feature {f}"></figure>'
        if steer
        else ""
    )
    return (
        f'<article class="feature" id="f{f}" data-feature="{f}" data-search="{search}">'
        f'<h2>feature {f}</h2><p class="explanation">{html.escape(expl) or "<i>no explanation</i>"}</p>'
        f'<p class="scores">{_scores(row, score_cols)}</p>{img}{steering}{prov}</article>'
    )


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f6f6f4; color: #222; }}
header {{ position: sticky; top: 0; background: #fff; padding: .6em 1em; border-bottom: 1px solid #ddd; z-index: 1; }}
header h1 {{ font-size: 1.2em; margin: 0 0 .3em; }}
#q {{ width: min(40em, 90%); font-size: 1em; padding: .3em .5em; }}
#count {{ margin-left: 1em; color: #666; }}
main {{ display: flex; flex-wrap: wrap; gap: 1em; padding: 1em; }}
.feature {{ background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .6em .8em; max-width: 100%; }}
.feature[hidden] {{ display: none; }}
.feature h2 {{ font-size: 1em; margin: 0; color: #666; }}
.explanation {{ font-size: 1.1em; margin: .2em 0; }}
.scores {{ color: #444; margin: .2em 0 .5em; }}
img {{ max-width: 100%; image-rendering: pixelated; display: block; }}
figure {{ margin: .5em 0 0; }} figcaption {{ color: #666; font-size: .85em; }}
table {{ border-collapse: collapse; font-size: .85em; }} td, th {{ border: 1px solid #ddd; padding: 0 .4em; }}
.missing {{ color: #a33; }}
footer {{ color: #777; padding: 0 1em 1em; font-size: .85em; }}
</style></head>
<body>
<header><h1>{title}</h1>
<input id="q" type="search" placeholder="search explanations (all words must match)" autofocus>
<span id="count"></span></header>
<main>
{cards}
</main>
<footer>{footer}</footer>
<script>
(function () {{
  "use strict";
  var cards = Array.prototype.slice.call(document.querySelectorAll("article.feature"));
  var box = document.getElementById("q"), count = document.getElementById("count");
  function search(q) {{
    var words = String(q || "").toLowerCase().split(/\\s+/).filter(Boolean), n = 0;
    cards.forEach(function (el) {{
      var hit = words.every(function (w) {{ return el.dataset.search.indexOf(w) >= 0; }});
      el.hidden = !hit; if (hit) n++;
    }});
    count.textContent = n + " of " + cards.length + " features";
    document.body.dataset.query = q || ""; document.body.dataset.matches = n;
    return n;
  }}
  function mark(img) {{
    img.dataset.naturalWidth = img.naturalWidth;
    img.dataset.loaded = img.complete && img.naturalWidth > 0 ? "1" : "0";
  }}
  Array.prototype.forEach.call(document.images, function (img) {{
    img.addEventListener("load", function () {{ mark(img); }});
    img.addEventListener("error", function () {{ mark(img); }});
    if (img.complete) mark(img);
  }});
  window.diffdictSearch = function (q) {{ box.value = q; return search(q); }};
  box.addEventListener("input", function () {{
    search(box.value);
    history.replaceState(null, "", box.value ? "#q=" + encodeURIComponent(box.value) : "#");
  }});
  var m = /[#&]q=([^&]*)/.exec(location.hash);
  window.diffdictSearch(m ? decodeURIComponent(m[1]) : "");
  window.addEventListener("load", function () {{
    Array.prototype.forEach.call(document.images, mark);
    document.body.dataset.ready = "1";
  }});
}})();
</script>
</body></html>
"""


def feature_table(explanations: pd.DataFrame, scores: pd.DataFrame | None = None) -> pd.DataFrame:
    """The browser's `features` table from the interp stage's ``explanations.parquet`` and
    ``scores.parquet``: ``feature, explanation`` + the per-feature score columns."""
    cols = [c for c in ("feature", "explanation") if c in explanations.columns]
    table = explanations[cols].drop_duplicates("feature")
    if scores is not None:
        keep = [
            c
            for c in ("feature", "balanced_accuracy", "auroc", "detection_score", "n_pos", "n_neg")
            if c in scores.columns
        ]
        table = table.merge(scores[keep], on="feature", how="left")
    return table


def provenance_table(dictionary, prompts: pd.DataFrame | None = None) -> pd.DataFrame | None:
    """Atom provenance of an ITDA dictionary (``dictionary.provenance()``) as the browser's
    `provenance` table: ``feature, prompt_id, step, token`` (+ ``prompt`` text when a prompts
    table of the atoms' split is given). None for kinds without provenance."""
    if not hasattr(dictionary, "provenance"):
        return None
    prov = {k: v.detach().cpu().numpy() for k, v in dictionary.provenance().items()}
    table = pd.DataFrame({"feature": np.arange(len(next(iter(prov.values())))), **prov})
    table = table.drop(columns=[c for c in ("row",) if c in table.columns])
    if prompts is not None and "prompt_id" in table.columns:
        table = table.merge(prompts[["prompt_id", "prompt"]], on="prompt_id", how="left")
    return table


def write_browser(
    out_dir: str | os.PathLike,
    features: pd.DataFrame,
    cards_dir: str | os.PathLike | None,
    steering_dir: str | os.PathLike | None = None,
    provenance: pd.DataFrame | None = None,
    title: str = "diffdict feature browser",
    meta: dict | None = None,
) -> Path:
    """Write ``out_dir/index.html`` plus the images it shows; returns the page's path.

    `features`: one row per feature: ``feature`` (int), ``explanation`` (str), score columns
    (every numeric column is shown; features are sorted by the first of `SCORE_ORDER` present),
    and optionally ``card`` (an image path, overriding the lookup in `cards_dir`).
    `cards_dir` / `steering_dir`: folders of per-feature images named by feature number (see
    `index_images`; steering rows come from ``steering.render.render_feature_rows``).
    `provenance` (ITDA): one row per atom with ``feature`` and anything describing its source
    token (``prompt_id, prompt, step, token``...), shown as a table under the card.
    `meta` is shown in the footer (site, dictionary, explainer...). The folder is replaced
    atomically.
    """
    if "feature" not in features.columns:
        raise ValueError(f"features table needs a 'feature' column; has {list(features.columns)}")
    feats = features.copy()
    feats["feature"] = feats["feature"].astype(int)
    if feats["feature"].duplicated().any():
        raise ValueError("features table lists a feature twice; aggregate scores per feature first")
    score_cols = [c for c in feats.columns if c != "feature" and pd.api.types.is_numeric_dtype(feats[c])]
    sort = next((c for c in SCORE_ORDER if c in feats.columns), None)
    feats = (
        feats.sort_values([sort, "feature"], ascending=[False, True], na_position="last")
        if sort
        else feats.sort_values("feature")
    )
    cards = index_images(cards_dir)
    if "card" in feats.columns:
        cards.update({int(f): Path(p) for f, p in zip(feats["feature"], feats["card"]) if isinstance(p, str) and p})
    steering = index_images(steering_dir)
    prov = provenance if provenance is not None else pd.DataFrame(columns=["feature"])
    prov_by = {int(f): g for f, g in prov.groupby("feature")} if len(prov) else {}

    with atomic_path(out_dir, is_dir=True) as tmp:
        (tmp / "cards").mkdir()
        (tmp / "steering").mkdir()
        html_cards = []
        for _, row in feats.iterrows():
            f = int(row["feature"])
            card = steer = None
            if f in cards:
                card = f"cards/{feature_file(f, cards[f].suffix.lower())}"
                _publish(cards[f], tmp / card)
            if f in steering:
                steer = f"steering/{feature_file(f, steering[f].suffix.lower())}"
                _publish(steering[f], tmp / steer)
            html_cards.append(_card(row, score_cols, card, steer, _provenance(prov_by.get(f, prov.iloc[:0]))))
        footer = html.escape(json.dumps(meta or {}, sort_keys=True, default=str)) + f" · {len(feats)} features"
        (tmp / "index.html").write_text(
            PAGE.format(title=html.escape(title), cards="\n".join(html_cards), footer=footer), encoding="utf-8"
        )
    return Path(out_dir) / "index.html"
