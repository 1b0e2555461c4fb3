"""The smallest valid config end to end, on a text-stream site: every figure and browser draws,
per-shard activation stores are intermediate (temp(), unless `activations.keep_shards`), and the
entry page results/report/index.html links every browser and figure.

One run of the minimal config (one site, an SAE and random directions, no MLP site) with its
site moved to the text stream, and one run up to a single merged store with the switch on. The
same config on an image-stream site runs through SLURM in tests/test_slurm.py.
"""

from __future__ import annotations

import copy
from html.parser import HTMLParser
from pathlib import Path

import pytest

from workflow_utils import minimal_config, planned_jobs, snakemake

pytestmark = pytest.mark.slow

SITE = "double1_txt"


def _minimal_config() -> dict:
    cfg = minimal_config()
    cfg["sites"] = {SITE: {**cfg["sites"].pop("double1_img"), "stream": "txt"}}
    return cfg


def _shard_stores(workdir: Path) -> list[Path]:
    return sorted((workdir / "results/toy/activations").glob("*/*/*.zarr"))


class _Links(HTMLParser):
    def __init__(self, text: str):
        super().__init__()
        self.hrefs = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.hrefs.append(dict(attrs)["href"])


@pytest.fixture(scope="module")
def run(tmp_path_factory, cli_env):
    workdir = tmp_path_factory.mktemp("temp_shards")
    cfg = _minimal_config()
    snakemake(workdir, cfg, "results/figures/", env=cli_env)
    return workdir, cfg


def test_every_figure_draws(run):
    workdir, _ = run
    figures = {p.name for p in (workdir / "results" / "figures").glob("*.png")}
    assert {"reconstruction.png", "interp_scores.png", "concept_recovery.png", "steering_success.png"} <= figures
    for d in ("sae", "random"):
        assert (workdir / "results/report/toy" / SITE / d / "index.html").exists()


def test_shard_stores_are_removed_once_merged(run):
    workdir, _ = run
    merged = sorted((workdir / "results/toy/activations" / SITE).glob("*.zarr"))
    assert [p.name for p in merged] == ["interp.zarr", "test.zarr", "train.zarr"]
    assert _shard_stores(workdir) == []


def test_removed_shards_rerun_nothing_but_changed_settings_still_do(run, cli_env):
    workdir, cfg = run
    r = snakemake(workdir, cfg, "-n", "results/figures/", env=cli_env)
    assert "Nothing to be done" in r.stdout + r.stderr
    cfg = copy.deepcopy(cfg)
    cfg["sites"][SITE]["tokens_per_image"] = 16  # a capture setting: the record of the deleted shards says so
    jobs = planned_jobs(snakemake(workdir, cfg, "-n", "results/figures/", env=cli_env).stdout)
    assert {j["wildcards"].get("split") for j in jobs if j["rule"] == "capture"} == {"train", "interp", "test"}


def test_entry_page_links_every_browser_and_figure(run):
    workdir, _ = run
    index = workdir / "results/report/index.html"
    hrefs = set(_Links(index.read_text()).hrefs)
    browsers = {f"toy/{SITE}/{d}/index.html" for d in ("sae", "random")}
    figures = {f"../figures/{p.name}" for p in (workdir / "results/figures").glob("*.p[nd][gf]")}
    assert len(figures) > 5 and browsers <= hrefs and figures <= hrefs
    assert all((index.parent / h).is_file() for h in hrefs), "a link points at nothing"


def test_keep_shards_keeps_them(tmp_path, cli_env):
    cfg = _minimal_config()
    cfg["activations"] = {"keep_shards": True}
    snakemake(tmp_path, cfg, f"results/toy/activations/{SITE}/test.zarr", env=cli_env)
    assert [p.relative_to(tmp_path / "results/toy/activations").as_posix() for p in _shard_stores(tmp_path)] == [
        f"{SITE}/test/000.zarr"
    ]
