"""Figures: result collection from the results tree, every figure writes PNG + PDF, one style."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from diffdict.plots import (
    collect_metrics,
    collect_tables,
    copy_grid,
    plot_concept_recovery,
    plot_fvu_by_site,
    plot_interp_scores,
    plot_l0_vs_fvu,
    plot_reconstruction,
    plot_splice_recovery,
    plot_steering_success,
)
from diffdict.plots.style import KIND_LABELS, KIND_ORDER, dict_palette, figure_paths, site_order

KINDS = {"sae": "topk_sae", "itda": "itda", "random": "random", "sae_wide": "topk_sae"}
SITES = ["single1_img", "double10_img", "double2_img"]


@pytest.fixture()
def recon(tmp_path) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    paths = []
    for site in SITES:
        for d in KINDS:
            p = tmp_path / "results" / "toy" / "metrics" / site / d / "reconstruction.json"
            p.parent.mkdir(parents=True)
            p.write_text(
                json.dumps(
                    {
                        "fvu": rng.uniform(0.2, 1),
                        "l0": rng.uniform(4, 40),
                        "dead_fraction": 0.1,
                        "alive_fraction": 0.9,
                        "mse": 1.0,
                        "n_tokens": 100,
                    }
                )
            )
            paths.append(p)
    return collect_metrics(paths, KINDS)


def _check_figure(paths) -> None:
    png, pdf = paths
    assert png.suffix == ".png" and pdf.suffix == ".pdf"
    with Image.open(png) as im:
        assert im.width > 300 and im.height > 200
    assert pdf.read_bytes()[:5] == b"%PDF-"
    assert not [p for p in png.parent.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_collect_metrics_reads_path_layout(recon):
    assert list(recon.columns[:7]) == ["model", "site", "dict", "kind", "fvu", "l0", "dead_fraction"]
    assert len(recon) == len(SITES) * len(KINDS) and set(recon.model) == {"toy"}
    assert recon.set_index(["site", "dict"]).loc[("double2_img", "sae_wide"), "kind"] == "topk_sae"
    assert {"mse", "n_tokens"} <= set(recon.columns)


def test_collect_tables_levels_and_errors(tmp_path):
    p = tmp_path / "toy" / "interp" / "double1_img" / "sae" / "annotation" / "scores.parquet"
    p.parent.mkdir(parents=True)
    pd.DataFrame({"feature": [1, 2], "balanced_accuracy": [0.9, 0.6]}).to_parquet(p)
    df = collect_tables([p], "interp", levels=("explainer",), kinds=KINDS)
    assert df[["site", "dict", "kind", "explainer"]].drop_duplicates().values.tolist() == [
        ["double1_img", "sae", "topk_sae", "annotation"]
    ]
    with pytest.raises(ValueError, match="explainer"):
        collect_tables([p.parent / "x.csv"], "interp", levels=("explainer", "extra"))
    with pytest.raises(ValueError, match="no 'metrics' folder"):
        collect_tables([p], "metrics")


def test_collect_tables_files_replicates_under_their_dictionary(tmp_path):
    paths = []
    for name, vals in (("sae", [0.9, 0.6]), ("sae-r1", [0.7]), ("itda", [0.5])):
        p = tmp_path / "toy" / "interp" / "double1_img" / name / "annotation" / "scores.parquet"
        p.parent.mkdir(parents=True)
        pd.DataFrame({"feature": range(len(vals)), "balanced_accuracy": vals}).to_parquet(p)
        paths.append(p)
    df = collect_tables(
        paths, "interp", levels=("explainer",), kinds={**KINDS, "sae-r1": "topk_sae"}, replicas={"sae-r1": ["sae", 1]}
    )
    assert list(df.columns[:6]) == ["model", "site", "dict", "kind", "explainer", "replicate"]
    assert df[["dict", "replicate", "kind"]].values.tolist() == [
        ["sae", 0, "topk_sae"],
        ["sae", 0, "topk_sae"],
        ["sae", 1, "topk_sae"],
        ["itda", 0, "itda"],
    ]
    assert "replicate" not in collect_tables(paths[:1], "interp", levels=("explainer",)).columns


def test_site_order_and_palette():
    assert site_order(SITES + ["custom"]) == ["double2_img", "double10_img", "single1_img", "custom"]
    pal = dict_palette(KINDS)
    assert pal["sae"] != pal["sae_wide"] and pal["sae"] != pal["itda"]
    assert dict_palette({"x": "topk_sae"})["x"] == pal["sae"]  # a kind keeps its colour everywhere


def test_reconstruction_figures(recon, tmp_path):
    _check_figure(plot_fvu_by_site(recon, tmp_path / "fig" / "fvu_by_site.png"))
    _check_figure(plot_reconstruction(recon, tmp_path / "fig" / "reconstruction.png"))
    first = plot_l0_vs_fvu(recon, tmp_path / "fig" / "l0_vs_fvu")
    _check_figure(first)
    # Same table, same bytes: a rerun must not look like a changed result.
    again = plot_l0_vs_fvu(recon, tmp_path / "again" / "l0_vs_fvu")
    assert first[1].read_bytes() == again[1].read_bytes() and first[0].read_bytes() == again[0].read_bytes()
    # one site and one trained dictionary (plus random) must draw too (seaborn's dodge / (n - 1))
    one = recon[(recon.site == recon.site.iloc[0]) & recon.kind.isin(["topk_sae", "random"])]
    _check_figure(plot_reconstruction(one.drop_duplicates("dict"), tmp_path / "fig" / "one.png"))
    _check_figure(plot_fvu_by_site(one[one.kind == "topk_sae"].drop_duplicates("dict"), tmp_path / "fig" / "one2.png"))
    with pytest.raises(ValueError, match=r"no dictionaries of fitted kinds \(not random, neurons\)"):
        plot_fvu_by_site(recon[recon.kind == "random"], tmp_path / "fig" / "none.png")
    with pytest.raises(ValueError, match=r"no dictionaries of kinds \['itda'\]"):
        plot_fvu_by_site(recon[recon.kind == "topk_sae"], tmp_path / "fig" / "none.png", kinds=["itda"])
    with pytest.raises(ValueError, match=r"lacks columns \['fvu'\]"):
        plot_l0_vs_fvu(recon.drop(columns="fvu"), tmp_path / "fig" / "bad.png")


def test_every_registered_kind_has_a_colour_and_label():
    """A new kind gets its place in the figures' order and a legend label, not a fallback colour."""
    from diffdict.dictionaries.kinds import REGISTRY, import_kind_modules

    import_kind_modules()
    assert set(REGISTRY) <= set(KIND_ORDER) and set(REGISTRY) <= set(KIND_LABELS)


def test_score_concept_splice_steering_figures(recon, tmp_path):
    rng = np.random.default_rng(1)
    scores = pd.DataFrame(
        [
            dict(site=s, dict=d, kind=k, feature=f, balanced_accuracy=rng.uniform(0.4, 1))
            for s in SITES[:2]
            for d, k in KINDS.items()
            for f in range(12)
        ]
    )
    _check_figure(plot_interp_scores(scores, tmp_path / "interp_scores.png"))
    concepts = pd.DataFrame(
        [
            dict(
                site=s,
                dict=d,
                kind=k,
                replicate=r,
                concept=c,
                token_auroc=rng.uniform(0.5, 1),
                kind_token_auroc=rng.uniform(0.4, 1),
                probe_token_auroc=0.97,
            )
            for s in SITES[:2]
            for d, k in KINDS.items()
            for r in range(2)
            for c in ["color=red", "shape=circle", "position=top-left"]
        ]
    )
    _check_figure(plot_concept_recovery(concepts, tmp_path / "concepts.png"))
    one = concepts[(concepts["dict"] == concepts["dict"].iloc[0]) & (concepts["site"] == SITES[0])]
    _check_figure(
        plot_concept_recovery(
            one.drop(columns=["replicate", "probe_token_auroc", "kind_token_auroc"]), tmp_path / "c1.png"
        )
    )
    _check_figure(plot_splice_recovery(recon.assign(recovered=rng.uniform(0, 1, len(recon))), tmp_path / "splice"))
    steer = pd.DataFrame(
        [
            dict(feature=f, strength=s, prompt_id=p, shift=float(rng.random() < s / 2), change_elsewhere=s / 4)
            for f in range(2)
            for s in (0, 0.5, 1, 2)
            for p in range(3)
        ]
    )
    _check_figure(plot_steering_success(steer, tmp_path / "steering_success.png"))
    _check_figure(
        plot_steering_success(
            pd.concat([steer.assign(dict="sae", kind="topk_sae"), steer.assign(dict="itda", kind="itda")]),
            tmp_path / "s2.png",
        )
    )
    # nothing graded (no explanation named a concept) or nothing steered: a figure that says so
    _check_figure(plot_steering_success(steer.assign(shift=np.nan), tmp_path / "s3.png"))
    _check_figure(plot_steering_success(steer.iloc[:0], tmp_path / "s4.png"))
    with pytest.raises(ValueError, match=r"steering success: table lacks columns \['shift'\]"):
        plot_steering_success(steer.drop(columns=["shift"]), tmp_path / "s5.png")


def test_copy_grid_and_paths(tmp_path):
    src = tmp_path / "grid.png"
    Image.new("RGB", (8, 8)).save(src)
    assert copy_grid(src, tmp_path / "out" / "grid.png").read_bytes() == src.read_bytes()
    with pytest.raises(FileNotFoundError):
        copy_grid(tmp_path / "missing.png", tmp_path / "x.png")
    assert figure_paths("a/b.pdf") == (Path("a/b.png"), Path("a/b.pdf"))
