"""The static feature browser: files, escaping, and (in headless Chromium) search + images.

CI needs Debian's `chromium` package (`apt-get install -y chromium`); without it the browser
test is skipped with that reason.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from diffdict.plots.browser import feature_table, index_images, provenance_table, write_browser

from headless import NEEDS_CHROMIUM, chromium, dump_dom

FEATURES = pd.DataFrame(
    {
        "feature": [3, 17, 42],
        "explanation": ["red circles on a dark background", "blue squares", "<script>alert(1)</script> stripes"],
        "balanced_accuracy": [0.71, 0.93, 0.55],
        "auroc": [0.8, 0.97, np.nan],
    }
)


def _png(path: Path, w: int, h: int, rgb) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), rgb, np.uint8)).save(path)


@pytest.fixture()
def browser(tmp_path) -> Path:
    cards, steer = tmp_path / "cards", tmp_path / "steer"
    _png(cards / "feature_000003.png", 120, 40, (200, 20, 20))
    _png(cards / "17.png", 90, 30, (20, 20, 200))  # another naming scheme: matched by number
    _png(steer / "feature_000003.png", 64, 32, (0, 150, 0))
    prov = pd.DataFrame({"feature": [3], "prompt_id": [1234], "prompt": ["a red circle"], "step": [0], "token": [37]})
    return write_browser(
        tmp_path / "browser",
        FEATURES,
        cards,
        steer,
        prov,
        title="double1_img / itda",
        meta={"site": "double1_img", "dict": "itda"},
    )


def test_browser_files_and_escaping(browser):
    page = browser.read_text()
    root = browser.parent
    assert (root / "cards" / "feature_000003.png").is_file() and (root / "cards" / "feature_000017.png").is_file()
    assert (root / "steering" / "feature_000003.png").is_file()
    assert 'src="cards/feature_000003.png"' in page  # relative: the folder can move
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert "no card" in page  # feature 42 has no card; said so rather than a broken image
    assert "1234" in page and "a red circle" in page  # ITDA atom provenance
    # Sorted by balanced accuracy, best first.
    assert page.index('id="f17"') < page.index('id="f3"') < page.index('id="f42"')


def test_feature_table_merges_interp_outputs():
    expl = pd.DataFrame({"feature": [3, 17], "explanation": ["a", "b"], "concepts": [[], []], "tokens": [5, 6]})
    scores = pd.DataFrame({"feature": [17], "balanced_accuracy": [0.9], "auroc": [0.95], "judge_cost": [0.1]})
    t = feature_table(expl, scores)
    assert list(t.columns) == ["feature", "explanation", "balanced_accuracy", "auroc"]
    assert t.set_index("feature").loc[17, "auroc"] == 0.95 and np.isnan(t.set_index("feature").loc[3, "auroc"])


def test_provenance_table_from_dictionary():
    import torch

    class Atoms:
        def provenance(self):
            return {
                "row": torch.tensor([9, 8]),
                "prompt_id": torch.tensor([5, 6]),
                "step": torch.tensor([0, 1]),
                "token": torch.tensor([3, -1]),
            }

    prompts = pd.DataFrame({"prompt_id": [5, 6], "prompt": ["red circle", "blue square"]})
    t = provenance_table(Atoms(), prompts)
    assert t.to_dict("list") == {
        "feature": [0, 1],
        "prompt_id": [5, 6],
        "step": [0, 1],
        "token": [3, -1],
        "prompt": ["red circle", "blue square"],
    }
    assert provenance_table(object()) is None


def test_index_images_rejects_ambiguous_names(tmp_path):
    _png(tmp_path / "feature_3.png", 4, 4, (0, 0, 0))
    _png(tmp_path / "f003.png", 4, 4, (0, 0, 0))
    with pytest.raises(ValueError, match="feature 3"):
        index_images(tmp_path)


class _Dom(HTMLParser):
    """Collect each feature <article>'s attributes and its <img>s' attributes."""

    def __init__(self):
        super().__init__()
        self.body, self.articles, self._cur = {}, {}, None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        elif tag == "article":
            self._cur = int(a["data-feature"])
            self.articles[self._cur] = {"attrs": a, "imgs": []}
        elif tag == "img" and self._cur is not None:
            self.articles[self._cur]["imgs"].append(a)

    def handle_endtag(self, tag):
        if tag == "article":
            self._cur = None


@pytest.mark.skipif(chromium() is None, reason=NEEDS_CHROMIUM)
def test_browser_search_shows_matching_card_in_chromium(browser, tmp_path):
    url = browser.resolve().as_uri() + "#q=" + "RED%20circle"  # case-insensitive, every word
    html = dump_dom(url, tmp_path / "profile")
    dom = _Dom()
    dom.feed(html)
    assert dom.body.get("data-ready") == "1", "page scripts did not finish"
    assert dom.body.get("data-query") == "RED circle" and dom.body.get("data-matches") == "1"
    assert set(dom.articles) == {3, 17, 42}
    hidden = {f for f, a in dom.articles.items() if "hidden" in a["attrs"]}
    assert hidden == {17, 42}  # only the matching feature is shown
    card, steer = dom.articles[3]["imgs"]
    assert card["src"] == "cards/feature_000003.png"
    assert card["data-loaded"] == "1" and card["data-natural-width"] == "120"  # the image really loaded
    assert steer["data-loaded"] == "1" and steer["data-natural-width"] == "64"
