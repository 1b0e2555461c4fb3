"""The entry page results/report/index.html: links, escaping, and (in headless Chromium, from
file://) that it loads, shows the figures and leads to the feature browsers.

The Chromium test needs Debian's `chromium` package (`apt-get install -y chromium`); without it
it is skipped with that reason, like the feature browser's.
"""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from diffdict.cli import main
from diffdict.plots.browser import write_browser
from diffdict.plots.report_index import (
    Browser,
    Figure,
    browsers_from_dirs,
    caption_summary,
    figures_from_paths,
    render_index,
    write_index,
)

from headless import NEEDS_CHROMIUM, chromium, dump_dom


class _Page(HTMLParser):
    """The page's <body> attributes, links (href -> text) and images."""

    def __init__(self, text: str):
        super().__init__()
        self.body, self.links, self.imgs, self._href = {}, {}, [], None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        elif tag == "a":
            self._href = a["href"]
            self.links[self._href] = ""
        elif tag == "img":
            self.imgs.append(a)

    def handle_data(self, data):
        if self._href is not None:
            self.links[self._href] += data

    def handle_endtag(self, tag):
        if tag == "a":
            self._href = None


def _png(path: Path, w: int = 40, h: int = 20) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(path)
    return path


def test_render_links_relative_and_escaped(tmp_path):
    report = tmp_path / "report"
    browsers = [
        Browser("double1_img", "sae", report / "toy/double1_img/sae/index.html"),
        Browser("double1_img", "a&b <i>", report / "toy/double1_img/a&b <i>/index.html"),
        Browser("double1_mlp", "neurons", report / "toy/double1_mlp/neurons/index.html"),
    ]
    figures = [
        Figure(
            "reconstruction",
            tmp_path / "figures/reconstruction.png",
            "FVU <by> site.",
            pdf=tmp_path / "figures/reconstruction.pdf",
        ),
        Figure("samples", tmp_path / "figures/samples.png"),
    ]
    text = render_index("toy <model>", browsers, figures, base=report)
    page = _Page(text)
    assert page.links == {
        "toy/double1_img/sae/index.html": "sae",
        "toy/double1_img/a%26b%20%3Ci%3E/index.html": "a&b <i>",  # URL-quoted, text escaped
        "toy/double1_mlp/neurons/index.html": "neurons",
        "../figures/reconstruction.png": "",  # the thumbnail is the link
        "../figures/reconstruction.pdf": "PDF",
        "../figures/samples.png": "",
    }
    assert [i["src"] for i in page.imgs] == ["../figures/reconstruction.png", "../figures/samples.png"]
    assert "<i>" not in text and "<model>" not in text and "&lt;by&gt;" in text
    assert "file:" not in text and 'href="/' not in text  # nothing absolute: the tree can move
    # rows are sites, columns dictionaries; a pair that has no browser is a dash
    rows = text.split("<tr>")[1:]
    assert [r.split("</th>")[0].removeprefix("<th>") for r in rows] == ["site", "double1_img", "double1_mlp"]
    assert rows[2].count('class="none"') == 2


def test_render_rejects_duplicate_browsers(tmp_path):
    b = Browser("s", "d", tmp_path / "s/d/index.html")
    with pytest.raises(ValueError, match="site 's', dictionary 'd'"):
        render_index("toy", [b, b], [], base=tmp_path)


def test_ground_truth_checks_come_first_with_their_verdict(tmp_path):
    checks = pd.DataFrame(
        [
            dict(site="double1_img", dict="sae", check="core_token_auroc", value=0.81, lo=np.nan, hi=np.nan,
                 threshold=0.9, null=0.78, ceiling=0.98, passed=False),
            dict(site="double1_img", dict="sae", check="interp_token_f1_vs_random <x>", value=0.05, lo=0.01,
                 hi=0.09, threshold=0.0, null=0.22, ceiling=np.nan, passed=True),
        ]
    )  # fmt: skip
    browsers = [Browser("double1_img", "sae", tmp_path / "toy/double1_img/sae/index.html")]
    text = render_index("toy", browsers, [], base=tmp_path, checks=checks)
    assert text.index("Ground-truth checks") < text.index("Feature browsers")
    assert "1 of 2 checks pass." in text
    assert '<td class="fail">no</td>' in text and '<td class="pass">yes</td>' in text
    assert "every run ≥ 0.90" in text and "+0.050 [+0.010, +0.090]" in text and "<x>" not in text
    assert "Ground-truth checks" not in render_index("toy", browsers, [], base=tmp_path)  # real models: none


def test_caption_summary_takes_the_lead():
    assert (
        caption_summary("**Concept recovery on the\nshapes world.** The toy model ...")
        == "Concept recovery on the shapes world."
    )
    assert (
        caption_summary("Samples on held-out ``test`` prompts, *each* under its prompt. Green: ...")
        == "Samples on held-out test prompts, each under its prompt."
    )
    assert caption_summary("") == ""


def test_browser_folder_without_page_is_named(tmp_path):
    (tmp_path / "toy/double1_img/sae").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="double1_img/sae: not a feature browser"):
        browsers_from_dirs([tmp_path / "toy/double1_img/sae"])


def test_cli_links_collected_figures_with_their_pdfs(tmp_path):
    """The rule's call: figures are given where they are drawn and linked where
    collect-figures copies them; a PDF drawn beside a PNG is linked too."""
    b = tmp_path / "results/report/toy/double1_img/sae"
    b.mkdir(parents=True)
    (b / "index.html").write_text("<html></html>")
    plots = tmp_path / "results/plots/toy"
    _png(plots / "reconstruction.png")
    (plots / "reconstruction.pdf").write_bytes(b"%PDF-1.4")
    _png(plots / "samples.png")
    caption = tmp_path / "reconstruction.rst"
    caption.write_text("**Reconstruction by site.** Longer text.")
    out = tmp_path / "results/report/index.html"
    assert (
        main(
            [
                "report-index",
                "--model-name",
                "toy",
                "--browsers",
                str(b),
                "--figures",
                str(plots / "reconstruction.png"),
                str(plots / "samples.png"),
                "--figures-dir",
                str(tmp_path / "results/figures"),
                "--captions",
                str(caption),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    text = out.read_text()
    assert set(_Page(text).links) == {
        "toy/double1_img/sae/index.html",
        "../figures/reconstruction.png",
        "../figures/reconstruction.pdf",
        "../figures/samples.png",
    }
    assert "Reconstruction by site." in text
    assert not list(out.parent.glob(".*.tmp"))  # written atomically: no temporary left behind


@pytest.fixture()
def results(tmp_path) -> Path:
    """A tiny results tree: two real feature browsers, two figures drawn and collected, and
    the entry page linking them."""
    root = tmp_path / "results"
    features = pd.DataFrame({"feature": [3], "explanation": ["red circles"], "balanced_accuracy": [0.9]})
    _png(tmp_path / "cards/feature_000003.png", 60, 20)
    dirs = [root / "report/toy" / s / d for s, d in [("double1_img", "sae"), ("double1_img", "random")]]
    for d in dirs:
        write_browser(d, features, tmp_path / "cards", title=f"{d.parent.name} / {d.name}")
    plots = [_png(root / "plots/toy/reconstruction.png", 80, 40), _png(root / "plots/toy/samples.png", 50, 50)]
    for p in plots:  # what rule `figures` does after the page is written
        shutil.copy2(p, _png(root / "figures" / p.name))
    write_index(
        root / "report/index.html",
        "toy",
        browsers_from_dirs(dirs),
        figures_from_paths(plots, collected_dir=root / "figures"),
    )
    return root


def _dump_dom(url: str, profile: Path) -> _Page:
    return _Page(dump_dom(url, profile))


@pytest.mark.skipif(chromium() is None, reason=NEEDS_CHROMIUM)
def test_index_opens_from_file_and_leads_to_the_browsers_in_chromium(results, tmp_path):
    url = (results / "report/index.html").resolve().as_uri()
    page = _dump_dom(url, tmp_path / "profile")
    assert page.body.get("data-ready") == "1", "page did not finish loading"
    assert {h: t for h, t in page.links.items() if t} == {
        "toy/double1_img/sae/index.html": "sae",
        "toy/double1_img/random/index.html": "random",
    }
    assert {i["src"]: i["data-loaded"] for i in page.imgs} == {
        "../figures/reconstruction.png": "1",
        "../figures/samples.png": "1",
    }  # thumbnails really loaded
    for href in page.links:  # every link resolves, from file://, to a file of the tree
        assert Path(unquote(urlparse(urljoin(url, href)).path)).is_file(), href
    browser = _dump_dom(urljoin(url, "toy/double1_img/sae/index.html"), tmp_path / "profile")
    assert browser.body.get("data-ready") == "1"  # the linked feature browser opens and runs
