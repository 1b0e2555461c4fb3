"""Steering grids on a tiny random Flux pipeline: seeding, monotone effect, border, metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from diffdict.atomic import write_table
from diffdict.model import generate_images as generate
from diffdict.model import steer
from diffdict.model.tiny import tiny_pipeline
from diffdict.sites import Site
from diffdict.steering import run_steering, site_token_norm, steering_grid
from diffdict.steering.grid import SteeringRun
from diffdict.steering.metrics import (
    annotator_metrics,
    explanation_targets,
    judge_from_scorer,
    judge_metrics,
)
from diffdict.steering.select import select_features

# 32x32 px -> an 8x8 image-token grid in the tiny pipeline; its width is 2 heads x 8 = 16.
MODEL_CFG = {"height": 32, "width": 32, "num_inference_steps": 3, "guidance_scale": 0.0, "max_sequence_length": 8}
D_MODEL, GRID = 16, 8
SITE = Site(name="double0_img", block="double", index=0, stream="img", place="resid", steps=(0,))
PROMPTS = ["a red circle", "a blue square on dark", "green triangle"]
SEEDS = [11, 12, 13]


class _Dict(torch.nn.Module):
    """Minimal dictionary: random, deliberately not unit-norm directions (steering normalises)."""

    def __init__(self, n: int, d: int = D_MODEL, seed: int = 0):
        super().__init__()
        self.raw = torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) * 3.0

    @property
    def directions(self):
        return self.raw


@pytest.fixture(scope="module")
def pipe():
    p = tiny_pipeline(seed=0)
    p.set_progress_bar_config(disable=True)
    return p


def test_unsteered_column_is_plain_generation(pipe, tmp_path):
    out_png = tmp_path / "grid.png"
    table = steering_grid(
        pipe,
        SITE,
        _Dict(4),
        [1, 3],
        [0.0, 1.0],
        PROMPTS,
        SEEDS,
        MODEL_CFG,
        out_png,
        mean_norm=2.0,
        prompt_ids=[7, 8, 9],
        explanations={1: "red things"},
        batch_size=2,
        rows_dir=tmp_path / "rows",
        images_path=tmp_path / "images.safetensors",
        table_path=tmp_path / "table.parquet",
    )
    run = SteeringRun.load(tmp_path / "images.safetensors", tmp_path / "table.parquet")
    # Plain generation, written out independently of the steering module: one seeded generator each.
    gens = [torch.Generator("cpu").manual_seed(s) for s in SEEDS]
    plain = pipe(prompt=PROMPTS[:2], generator=gens[:2], output_type="np", **MODEL_CFG).images
    plain = np.concatenate([plain, pipe(prompt=PROMPTS[2:], generator=gens[2:], output_type="np", **MODEL_CFG).images])
    plain = (plain * 255).round().astype(np.uint8)
    zero = table[table.strength == 0]
    assert len(zero) == 2 * len(PROMPTS)
    for r in zero.itertuples():
        np.testing.assert_array_equal(run.images[r.image], plain[PROMPTS.index(r.prompt)])
    # Steering must actually change the images at non-zero strength.
    one = table[table.strength == 1.0]
    assert all(not np.array_equal(run.images[r.image], run.images[r.baseline_image]) for r in one.itertuples())
    assert set(table.alpha) == {0.0, 2.0} and table.loc[table.feature == 1, "explanation"].eq("red things").all()
    # The grid and the per-feature rows are real PNGs: label column + one column per strength.
    grid = Image.open(out_png)
    assert grid.width > 2 * 96 and grid.height > 6 * 96
    assert sorted(p.name for p in (tmp_path / "rows").iterdir()) == ["feature_000001.png", "feature_000003.png"]


def test_zero_strength_hook_is_transparent(pipe):
    """The steering hook itself adds exactly nothing at strength 0."""
    plain = generate(pipe, PROMPTS[:2], SEEDS[:2], MODEL_CFG)
    with steer(pipe.transformer, SITE, torch.ones(D_MODEL) / D_MODEL**0.5, 0.0):
        hooked = generate(pipe, PROMPTS[:2], SEEDS[:2], MODEL_CFG)
    np.testing.assert_array_equal(plain, hooked)


def test_change_grows_with_strength(pipe):
    strengths = [0.0, 0.5, 1.0, 2.0]
    run = run_steering(
        pipe, SITE, _Dict(2, seed=1), [0, 1], strengths, PROMPTS[:2], SEEDS[:2], MODEL_CFG, mean_norm=4.0
    )
    t = run.table
    diff = np.abs(run.images[t.image].astype(float) - run.images[t.baseline_image].astype(float)).mean(axis=(1, 2, 3))
    mean_change = pd.Series(diff).groupby(t.strength.values).mean()
    assert mean_change.loc[0.0] == 0.0
    assert (np.diff(mean_change.values) > 0).all(), mean_change  # strictly more change at each step up
    assert mean_change.loc[2.0] > 5.0, mean_change  # not rounding flicker: > 5/255 per pixel on average


def test_border_and_steps_leave_tokens_untouched(pipe):
    """Capture the image tokens entering the next block: only interior tokens, only on the
    chosen step, move, and by exactly strength x the unit direction."""
    dictionary = _Dict(1, seed=2)
    seen = []
    hook = pipe.transformer.transformer_blocks[1].register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["hidden_states"].detach().clone()), with_kwargs=True
    )
    try:
        generate(pipe, PROMPTS[:1], SEEDS[:1], MODEL_CFG)
        base = seen[:]
        seen.clear()
        run_steering(
            pipe, SITE, dictionary, [0], [3.0], PROMPTS[:1], SEEDS[:1], MODEL_CFG, mean_norm=1.0, border=2, steps=[1]
        )
    finally:
        hook.remove()
    n = MODEL_CFG["num_inference_steps"]
    steered = seen[n:]  # run_steering first regenerates the baseline (n calls), then steers
    assert len(steered) == n
    torch.testing.assert_close(steered[0], base[0], rtol=0, atol=0)  # step 0 not steered
    delta = (steered[1] - base[1])[0].reshape(GRID, GRID, D_MODEL)
    u = dictionary.directions[0] / dictionary.directions[0].norm()
    interior = delta[2:-2, 2:-2]
    torch.testing.assert_close(interior, (3.0 * u).expand_as(interior), atol=1e-4, rtol=1e-4)
    border = torch.ones(GRID, GRID, dtype=torch.bool)
    border[2:-2, 2:-2] = False
    assert delta[border].abs().max() == 0


def test_text_stream_steering(pipe):
    """Steering text tokens too: still changes the image, and `border` applies to image tokens only."""
    run = run_steering(
        pipe,
        SITE,
        _Dict(1, seed=3),
        [0],
        [2.0],
        PROMPTS[:1],
        SEEDS[:1],
        MODEL_CFG,
        mean_norm=4.0,
        streams=["txt"],
        border=1,
    )
    both = run_steering(
        pipe,
        SITE,
        _Dict(1, seed=3),
        [0],
        [2.0],
        PROMPTS[:1],
        SEEDS[:1],
        MODEL_CFG,
        mean_norm=4.0,
        streams=["img", "txt"],
        border=1,
    )
    assert run.table.streams.iloc[0] == "txt" and both.table.streams.iloc[0] == "img,txt"
    assert not np.array_equal(run.images[1], run.images[0])
    assert not np.array_equal(both.images[1], run.images[1])


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_site_token_norm_reads_store(tmp_path, dtype):
    from diffdict.store import ActivationWriter, StoreError

    x = np.random.default_rng(0).normal(size=(500, 16)).astype(np.float32) * 4
    with ActivationWriter(tmp_path / "a.zarr", 16, dtype=dtype, chunk_rows=64) as w:
        w.append(x, prompt_id=np.arange(500) // 50, step=np.zeros(500), token=np.arange(500) % 50)
    stored = torch.from_numpy(x).to(torch.float16 if dtype == "float16" else torch.bfloat16).float()
    expected = float(stored.norm(dim=1).mean())
    assert site_token_norm(tmp_path / "a.zarr") == pytest.approx(expected, rel=1e-5)
    strided = float(stored[::5][:100].norm(dim=1).mean())  # 100 rows, evenly strided
    assert site_token_norm(tmp_path / "a.zarr", max_tokens=100) == pytest.approx(strided, rel=1e-5)
    with pytest.raises(StoreError, match="not an activation store"):
        site_token_norm(tmp_path / "missing.zarr")


def test_run_steering_rejects_bad_arguments(pipe):
    with pytest.raises(ValueError, match="out of range"):
        run_steering(pipe, SITE, _Dict(2), [5], [1.0], PROMPTS[:1], SEEDS[:1], MODEL_CFG, mean_norm=1.0)
    with pytest.raises(ValueError, match="steps"):
        run_steering(pipe, SITE, _Dict(2), [0], [1.0], PROMPTS[:1], SEEDS[:1], MODEL_CFG, mean_norm=1.0, steps=[7])


def test_stages_from_files(pipe, tmp_path, monkeypatch):
    """steer_stage -> files -> steering_metrics_stage, as the workflow runs them."""
    from diffdict.steering.stage import steer_stage, steering_metrics_stage
    from diffdict.store import ActivationWriter

    with ActivationWriter(tmp_path / "train.zarr", D_MODEL) as w:  # every token has norm 2
        w.append(
            np.full((64, D_MODEL), 0.5, np.float32), prompt_id=np.zeros(64), step=np.zeros(64), token=np.arange(64)
        )
    expl = pd.DataFrame(
        {"feature": [0, 1, 2], "explanation": ["red", "blue", "big"], "concepts": [["color=red"], [], None]}
    )
    scores = pd.DataFrame({"feature": [0, 1, 2], "balanced_accuracy": [0.9, 0.8, 0.1]})
    prompts = pd.DataFrame({"prompt_id": [5, 6, 7], "prompt": PROMPTS, "seed": SEEDS})
    out = tmp_path / "steering"
    table = steer_stage(
        pipe,
        SITE,
        _Dict(3),
        expl,
        scores,
        prompts,
        tmp_path / "train.zarr",
        MODEL_CFG,
        out,
        {"features": 2, "prompts": 2, "strengths": [0.0, 1.0]},
    )
    assert sorted(table.feature.unique()) == [0, 1] and table.prompt_id.nunique() == 2
    assert sorted(table.alpha.unique()) == [0.0, pytest.approx(2.0, rel=1e-3)]
    assert {p.name for p in out.iterdir()} == {"grid.png", "rows", "images.safetensors", "table.parquet"}
    red = lambda imgs: [{"color=red"} if im[..., 0].mean() > im[..., 2].mean() else {"color=blue"} for im in imgs]
    m = steering_metrics_stage(
        out, expl, tmp_path / "metrics.parquet", annotate=red, vocabulary=["color=red", "color=blue", "size=large"]
    )
    own = m[m.graded_against == "own"]
    assert own.loc[own.feature == 0, "target"].eq("color=red").all()  # structured concepts win over text
    assert own.loc[own.feature == 1, "target"].eq("color=blue").all()  # no concepts: parsed from the text
    null = m[m.graded_against == "other_value"]  # the null: graded against the other colours
    assert null.loc[null.feature == 0, "target"].eq("color=blue").all() and len(null) == len(own)
    assert (m.loc[m.strength == 0, "shift"] == 0).all()
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "metrics.parquet"), m)
    with pytest.raises(ValueError, match="exactly one grader"):
        steering_metrics_stage(out, expl, tmp_path / "m2.parquet")

    # the workflow's grader: the annotator when there is one, else the explainer's own judge
    from types import SimpleNamespace

    from diffdict.interp import backends
    from diffdict.interp.backends.base import Judgement
    from diffdict.steering.stage import grade_steering
    from diffdict.world import CONCEPTS

    annotator = SimpleNamespace(annotate=red, concepts=list(CONCEPTS))  # its world's concept list grades
    by_annotator = grade_steering(out, expl, tmp_path / "m3.parquet", annotator=annotator)
    assert {"color=red", "color=blue"} <= set(by_annotator.target)
    built = []

    def fake_backend(cfg, cache_dir=None):
        built.append((cfg, cache_dir))
        redness = lambda e, x: Judgement(score=float(x.image[..., 0].mean() / 255), ok=True)
        return SimpleNamespace(judge=redness)

    monkeypatch.setattr(backends, "make_backend", fake_backend)
    explainer = {"backend": "openai", "model": "vlm", "judge": {"backend": "openai", "model": "judge"}}
    by_judge = grade_steering(out, expl, tmp_path / "m4.parquet", explainer=explainer, cache_dir="c")
    assert built == [({"backend": "openai", "model": "judge"}, "c")]
    assert set(by_judge.target) == {"red", "blue"} and by_judge["shift"].notna().all()
    with pytest.raises(ValueError, match="annotator or an explainer"):
        grade_steering(out, expl, tmp_path / "m5.parquet")


def test_nothing_to_steer_is_a_run_that_says_so(pipe, tmp_path):
    """No explained feature (interp found none eligible): every file exists and says why; the
    metrics, the summary and the figure after it report the absence instead of failing."""
    import zarr

    from diffdict.plots import plot_steering_success
    from diffdict.steering.metrics import steering_summary
    from diffdict.steering.stage import steer_stage, steering_metrics_stage

    zarr.open_group(str(tmp_path / "train.zarr"), mode="w").create_array("x", data=np.ones((8, D_MODEL), np.float16))
    expl = pd.DataFrame({"feature": pd.Series([], dtype=int), "explanation": pd.Series([], dtype=str)})
    scores = pd.DataFrame({"feature": pd.Series([], dtype=int), "balanced_accuracy": pd.Series([], dtype=float)})
    prompts = pd.DataFrame({"prompt_id": [5], "prompt": PROMPTS[:1], "seed": SEEDS[:1]})
    out = tmp_path / "steering"
    table = steer_stage(pipe, SITE, _Dict(3), expl, scores, prompts, tmp_path / "train.zarr", MODEL_CFG, out, {})
    assert table.empty and list((out / "rows").iterdir()) == []
    assert Image.open(out / "grid.png").size[0] > 0
    m = steering_metrics_stage(out, expl, tmp_path / "metrics.parquet", annotate=lambda imgs: 1 / 0)
    assert m.empty and "shift" in m.columns
    assert steering_summary(m.assign(site="s", dict="d")).empty
    png, pdf = plot_steering_success(m, tmp_path / "success")
    assert png.stat().st_size > 0 and pdf.exists()


# --- metrics on hand-made runs (no pipeline) -----------------------------------------------------


def _solid(rgb):
    return np.tile(np.array(rgb, np.uint8), (4, 4, 1))


def _annotate(images):
    """Fake shapes-world annotator: colour from the dominant channel, size from brightness."""
    out = []
    for im in images:
        m = im.reshape(-1, 3).mean(0)
        out.append(
            {f"color={['red', 'green', 'blue'][int(m.argmax())]}", "size=big" if m.sum() > 300 else "size=small"}
        )
    return out


def _run():
    images = np.stack(
        [
            _solid([10, 200, 10]),  # 0: baseline prompt 0: green, small
            _solid([10, 10, 200]),  # 1: baseline prompt 1: blue, small
            _solid([220, 40, 40]),  # 2: f0 s=1 p0: red, small  -> hit, size unchanged
            _solid([250, 200, 10]),  # 3: f0 s=1 p1: red, big    -> hit, size changed
        ]
    )
    rows = [
        dict(feature=0, strength=0.0, prompt_id=0, image=0, baseline_image=0),
        dict(feature=0, strength=0.0, prompt_id=1, image=1, baseline_image=1),
        dict(feature=0, strength=1.0, prompt_id=0, image=2, baseline_image=0),
        dict(feature=0, strength=1.0, prompt_id=1, image=3, baseline_image=1),
    ]
    t = pd.DataFrame(rows).assign(explanation="red shapes", prompt="p", seed=0, alpha=0.0)
    return SteeringRun(images, t)


def test_annotator_metrics_shift_and_change_elsewhere(tmp_path):
    m_all = annotator_metrics(_run(), _annotate)
    null = m_all[(m_all.graded_against == "other_value") & (m_all.strength == 1.0)].sort_values("prompt_id")
    # steered red: graded against the other colours seen (blue, green) it moved away from them
    assert null.target.tolist() == ["color=blue | color=green"] * 2 and (null["shift"] <= 0).all()
    m = m_all[m_all.graded_against == "own"]
    s1 = m[m.strength == 1.0].sort_values("prompt_id")
    assert s1.target.tolist() == ["color=red"] * 2
    assert s1.concept_hit.tolist() == [1.0, 1.0] and s1["shift"].tolist() == [1.0, 1.0]
    assert s1.change_elsewhere.tolist() == [0.0, 1.0]  # only the second changed its size
    s0 = m[m.strength == 0.0]
    assert (s0["shift"] == 0).all() and (s0.pixel_change == 0).all()
    write_table(tmp_path / "m.csv", m)
    assert pd.read_csv(tmp_path / "m.csv").shape == m.shape
    # An explanation naming no known concept is kept with NaN scores, not silently dropped.
    unknown = annotator_metrics(_run(), _annotate, explanations={0: "spirals"})
    assert set(unknown.graded_against) == {"own"}  # no target, no null
    assert unknown["shift"].isna().all() and (unknown.target == "").all()


def test_steering_summary_counts_beside_the_null():
    from diffdict.steering.metrics import steering_summary

    rows = []
    for f in range(3):
        for s in (0.0, 0.5, 1.0):
            for p in range(2):
                # own target: every feature moves at s=1; other values: only feature 2 (by chance)
                rows.append(
                    {
                        "site": "x",
                        "dict": "sae",
                        "kind": "topk_sae",
                        "feature": f,
                        "strength": s,
                        "prompt_id": p,
                        "shift": float(s == 1.0),
                        "graded_against": "own",
                    }
                )
                rows.append(
                    {
                        "site": "x",
                        "dict": "sae",
                        "kind": "topk_sae",
                        "feature": f,
                        "strength": s,
                        "prompt_id": p,
                        "shift": float(s == 1.0 and f == 2) - float(s == 0.5),
                        "graded_against": "other_value",
                    }
                )
    out = steering_summary(pd.DataFrame(rows)).set_index("graded_against")
    assert out.loc["own", ["n_features", "n_moved", "n_moved_positive"]].tolist() == [3, 3, 3]
    assert out.loc["other_value", ["n_moved", "n_moved_positive"]].tolist() == [1, 1]
    assert out.loc["own", "mean_shift_positive"] == pytest.approx(0.5)
    # every feature shifts 0.5 toward its own value: no spread, a CI of one point
    assert out.loc["own", ["shift_lo", "shift_hi"]].tolist() == pytest.approx([0.5, 0.5])
    # own - other, paired by feature: 0.5 - 0 (feature 2), 0.5 - (-0.5) (features 0, 1)
    assert out.loc["own", "minus_other"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert 0.5 <= out.loc["own", "minus_other_lo"] < out.loc["own", "minus_other_hi"] <= 1.0
    assert out[["minus_random", "minus_other"]].loc["other_value"].isna().all()  # no random directions here


def test_steering_summary_gap_to_random_directions():
    """An own row's gap to random directions' own row at the same site, with its CI over features."""
    from diffdict.steering.metrics import steering_summary

    rows = []
    for name, kind, shifts in (("sae", "topk_sae", [0.2, 0.4, 0.6, 0.8]), ("random", "random", [0.1] * 4)):
        for f, shift in enumerate(shifts):
            for strength in (0.0, 1.0):
                for against in ("own", "other_value"):
                    value = (shift if against == "own" else 0.0) * strength
                    rows.append(dict(site="x", dict=name, kind=kind, feature=f, strength=strength, prompt_id=0,
                                     shift=value, graded_against=against))  # fmt: skip
    out = steering_summary(pd.DataFrame(rows)).set_index(["dict", "graded_against"])
    sae = out.loc[("sae", "own")]
    assert sae["minus_random"] == pytest.approx(0.5 - 0.1)
    assert 0.2 - 0.1 <= sae["minus_random_lo"] < 0.4 < sae["minus_random_hi"] <= 0.8 - 0.1  # the SAE's spread
    assert sae["shift_lo"] < 0.5 < sae["shift_hi"]
    assert np.isnan(out.loc[("random", "own"), "minus_random"])  # random directions are the null themselves


def test_explanation_targets():
    vocab = ["color=red", "color=blue", "shape=circle", "shape=square", "background=dark"]
    assert explanation_targets("Red or blue circles", vocab) == {"color": {"red", "blue"}, "shape": {"circle"}}
    assert explanation_targets("shape=square", vocab) == {"shape": {"square"}}
    assert explanation_targets("redundant text", vocab) == {}
    assert explanation_targets("shapes in the top left corner", ["position=top-left"]) == {"position": {"top-left"}}


def test_judge_metrics():
    redness = lambda img, expl: float(img[..., 0].mean() / 255)
    m = judge_metrics(_run(), judge_from_scorer(redness))
    s1 = m[m.strength == 1.0]
    assert (s1.concept_hit > 0.5).all() and (s1["shift"] > 0).all()
    assert (m[m.strength == 0.0].concept_hit == 0.5).all()
    with pytest.raises(ValueError, match="probability"):
        judge_metrics(_run(), lambda a, b, e: 3.0)


def test_select_features():
    expl = pd.DataFrame({"feature": [0, 1, 2, 3], "explanation": ["a", "b", "c", "d"]})
    scores = pd.DataFrame({"feature": [0, 1, 2, 3], "balanced_accuracy": [0.6, 0.9, np.nan, 0.9]})
    assert select_features(expl, 2, scores) == {1: "b", 3: "d"}
    assert select_features(expl, 2, features=[2]) == {2: "c"}
