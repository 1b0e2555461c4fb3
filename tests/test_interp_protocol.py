"""Protocol (leak-free splits, seeded sampling), metrics, bootstrap, annotation backend, parsing."""

import numpy as np
import pandas as pd
import pytest
import torch

from diffdict.interp.backends import Example, make_backend
from diffdict.interp.backends.annotation import AnnotationBackend
from diffdict.interp.backends.local_vlm import TransformersBackend
from diffdict.interp.backends.prompts import ParseError, parse_explanation, parse_score
from diffdict.interp.codes import CodeTable
from diffdict.interp.protocol import (
    FeatureTask,
    LeakError,
    build_tasks,
    eligibility,
    min_interp_images,
    split_images,
)
from diffdict.interp.scoring import (
    auroc,
    balanced_accuracy,
    bootstrap_ci,
    compare_to_baseline,
    feature_scores,
    summarise,
)
from diffdict.interp.stats import feature_statistics, heatmaps

CONCEPTS = ["color=red", "color=blue", "shape=circle", "shape=square", "background=dark"]
GRID = (4, 4)


def shapes_world(n_img=200, seed=0):
    """Per image: an object (colour + shape) on a 2x2 patch, and a background; token masks per concept."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((n_img, len(CONCEPTS)), bool)
    masks = np.zeros((n_img, *GRID, len(CONCEPTS)), bool)
    for i in range(n_img):
        col, shp = rng.integers(2), 2 + rng.integers(2)
        r, c = rng.integers(0, 3, size=2)
        obj = np.zeros(GRID, bool)
        obj[r : r + 2, c : c + 2] = True
        masks[i, ..., col] = masks[i, ..., shp] = obj
        labels[i, [col, shp]] = True
        if rng.random() < 0.5:
            masks[i, ..., 4], labels[i, 4] = ~obj, True
    return np.arange(n_img) + 1000, labels, masks


def codes_for(pids, masks, n_random=30, seed=1):
    """Feature 0 = the red mask; features 1.. fire on random tokens of a random half of the images."""
    rng = np.random.default_rng(seed)
    n, T = len(pids), GRID[0] * GRID[1]
    F = 1 + n_random
    dense = np.zeros((n, T, F), np.float32)
    dense[..., 0] = masks[..., 0].reshape(n, T) * (1 + rng.random((n, T)))
    on = (rng.random((n, 1, n_random)) < 0.5) & (rng.random((n, T, n_random)) < 0.4)
    dense[..., 1:] = on * (1 + rng.random((n, T, n_random)))
    return code_table(dense, pids)


def code_table(dense: np.ndarray, pids) -> CodeTable:
    """Codes of dense feature values [images, tokens, features] on `GRID` (one step): each token's top 8."""
    n, T, F = dense.shape
    val, idx = torch.from_numpy(dense.reshape(n * T, F)).topk(min(8, F), dim=-1)
    return CodeTable(
        idx.int(),
        val,
        torch.from_numpy(np.repeat(pids, T)),
        torch.zeros(n * T, dtype=torch.int16),
        torch.arange(T).repeat(n).int(),
        F,
        GRID,
    )


CFG = {"n_features": 100, "n_explain": 5, "n_pos": 10, "n_neg": 10, "seed": 3, "min_active_tokens": 6}


def evaluate(codes, backend, cfg=CFG):
    st = feature_statistics(codes, active_quantile=0.5)
    tasks, info = build_tasks(st.features, st.images, codes.prompt_id.numpy(), cfg)
    heat = heatmaps(codes, [(t.feature, p) for t in tasks for p in t.explain])
    rows, exps = [], []
    for t in tasks:
        e = backend.explain(
            t.feature,
            [Example(p, None, heat[(t.feature, p)]) for p in t.explain],
            [Example(p, None) for p in t.explain_neg],
        )
        exps.append(
            {"feature": t.feature, "explanation": e.text, "ok": e.ok, "error": e.error, "tokens": 0, "cost": 0.0}
        )
        for p, lab in [*((p, 1) for p in t.positives), *((p, 0) for p in t.negatives)]:
            j = backend.judge(e, Example(p, None))
            rows.append({"feature": t.feature, "label": lab, "score": j.score, "ok": j.ok, "tokens": 0, "cost": 0.0})
    return tasks, info, feature_scores(pd.DataFrame(rows), pd.DataFrame(exps)).set_index("feature")


def test_annotation_recovers_planted_concept_and_random_is_chance():
    pids, labels, masks = shapes_world()
    codes = codes_for(pids, masks)
    backend = AnnotationBackend.from_arrays(CONCEPTS, pids, labels, masks)
    tasks, info, scores = evaluate(codes, backend)
    assert 0 in scores.index, "the concept feature must be eligible"
    assert scores.loc[0, "explanation"] == "color=red"
    assert scores.loc[0, "balanced_accuracy"] == 1.0 and scores.loc[0, "auroc"] == 1.0
    rand = scores.drop(index=0)["balanced_accuracy"]
    assert len(rand) >= 20 and abs(rand.mean() - 0.5) < 0.1
    # image-level labels only (no token masks) still find the concept
    backend2 = AnnotationBackend.from_arrays(CONCEPTS, pids, labels)
    assert evaluate(codes, backend2)[2].loc[0, "explanation"] == "color=red"


def test_tasks_are_leak_free_and_seeded():
    pids, labels, masks = shapes_world()
    codes = codes_for(pids, masks)
    st = feature_statistics(codes)
    for neg in ("random", "other", "mixed"):
        tasks, info = build_tasks(st.features, st.images, codes.prompt_id.numpy(), {**CFG, "negatives": neg})
        explain_ids, held_ids = set(info["explain_ids"]), set(info["heldout_ids"])
        assert not explain_ids & held_ids and explain_ids | held_ids == set(pids.tolist())
        for t in tasks:
            assert not set(t.explain) & (set(t.positives) | set(t.negatives))  # the paper's leak
            assert set(t.explain) | set(t.explain_neg) | set(t.mid) <= explain_ids
            assert set(t.positives) | set(t.negatives) <= held_ids
            assert len(t.positives) == CFG["n_pos"] and len(t.negatives) == CFG["n_neg"]
            # negatives never activate the feature (negative_quantile 0: exactly zero on them)
            fired = st.images[st.images["feature"] == t.feature]["prompt_id"]
            assert not (set(t.negatives) | set(t.explain_neg)) & set(fired)
        if neg == "other":
            assert all(k == "other" for t in tasks for k in t.negative_kinds[:1])
    again, _ = build_tasks(st.features, st.images, codes.prompt_id.numpy(), CFG)
    first, _ = build_tasks(st.features, st.images, codes.prompt_id.numpy(), CFG)
    assert [t.__dict__ for t in again] == [t.__dict__ for t in first]
    other_seed, _ = build_tasks(st.features, st.images, codes.prompt_id.numpy(), {**CFG, "seed": 4})
    assert [t.positives for t in other_seed] != [t.positives for t in first]


def test_eligibility_names_why_a_feature_is_left_out():
    """A feature on every image has no held-out negatives ("dense"), one on two images too few
    positives ("rare"); both are left out of the sample and counted in the info."""
    pids, _, masks = shapes_world()
    n, T = len(pids), GRID[0] * GRID[1]
    dense = np.zeros((n, T, 3), np.float32)
    dense[..., 0] = masks[..., 0].reshape(n, T) * 2.0  # red tokens: eligible
    dense[:, :3, 1] = 1.0  # three tokens of every image
    dense[:2, :, 2] = 1.0  # every token of two images
    codes = code_table(dense, pids)
    st = feature_statistics(codes)
    tasks, info = build_tasks(st.features, st.images, codes.prompt_id.numpy(), CFG)
    why = eligibility(st.features, st.images, info["heldout_ids"], CFG)
    assert why["reason"].tolist() == ["", "dense", "rare"]
    assert why.loc[1, "n_neg_heldout"] == 0 and why.loc[2, "n_pos_explain"] + why.loc[2, "n_pos_heldout"] == 2
    assert [t.feature for t in tasks] == [0]
    assert (info["n_eligible"], info["n_ineligible_rare"], info["n_ineligible_dense"]) == (1, 1, 1)


@pytest.mark.parametrize("cfg, n", [({}, 20), ({"explain_fraction": 0.9}, 96), ({"n_pos": 2, "n_neg": 3}, 10)])
def test_min_interp_images_is_the_fewest_with_which_a_feature_can_be_judged(cfg, n):
    """Known answers (the split rounds as `split_images`: 95 images at 0.9 hold out only 9), checked
    against the protocol itself: with n images the best possible feature (on every explanation image
    and exactly n_pos held-out ones) is eligible; with n - 1 no feature is."""
    assert min_interp_images(cfg) == n
    c = {**CFG, "n_explain": 5, "n_pos": 5, "n_neg": 5, "min_active_tokens": 1, **cfg}
    for size, eligible in ((n, True), (n - 1, False)):
        pids = np.arange(size) + 1000
        explain, held = split_images(pids, c.get("explain_fraction", 0.5), c["seed"])
        on = np.isin(pids, np.concatenate([explain, held[: c["n_pos"]]]))
        codes = code_table(np.repeat(on[:, None, None], GRID[0] * GRID[1], axis=1).astype(np.float32), pids)
        st = feature_statistics(codes)
        tasks, info = build_tasks(st.features, st.images, pids, c)
        assert (info["n_eligible"] == 1) == eligible, (size, info)


def test_quantile_positives_span_the_activation_range():
    pids, labels, masks = shapes_world()
    codes = codes_for(pids, masks)
    st = feature_statistics(codes)
    cfg = {**CFG, "n_pos": 4}
    top, info = build_tasks(st.features, st.images, codes.prompt_id.numpy(), cfg)
    strat, _ = build_tasks(st.features, st.images, codes.prompt_id.numpy(), {**cfg, "positives": "quantiles"})
    held = set(info["heldout_ids"])
    im = st.images[st.images["n_active"] >= 1].set_index(["feature", "prompt_id"])["max"]
    for t, q in zip(top, strat):
        assert t.feature == q.feature and len(q.positives) == 4 and set(q.positives) <= held
        assert not set(q.explain) & set(q.positives)  # still leak-free
        ranked = (
            im.loc[t.feature]
            .loc[sorted(held & set(im.loc[t.feature].index))]
            .sort_values(ascending=False, kind="stable")
        )
        rank = {p: i for i, p in enumerate(ranked.index)}
        edges = np.linspace(0, len(ranked), 5).astype(int)
        # one positive from each quarter of the held-out positives, strongest quarter first
        assert [edges[i] <= rank[p] < edges[i + 1] for i, p in enumerate(q.positives)] == [True] * 4
        assert set(t.positives) == set(ranked.index[:4])  # top: the four strongest
    with pytest.raises(ValueError, match="positives 'best' is not one of"):
        build_tasks(st.features, st.images, codes.prompt_id.numpy(), {**cfg, "positives": "best"})


def test_leak_is_detected():
    t = FeatureTask(1, explain=[1, 2], explain_neg=[], mid=[], positives=[2, 3], negatives=[4])
    with pytest.raises(LeakError, match=r"\[2\]"):
        t.check()
    with pytest.raises(LeakError):
        FeatureTask(1, explain=[1], explain_neg=[], mid=[], positives=[3], negatives=[3]).check()


def test_split_images():
    a, b = split_images([5, 3, 3, 9, 1, 7], 0.5, seed=0)
    assert sorted([*a, *b]) == [1, 3, 5, 7, 9] and not set(a) & set(b)
    assert np.array_equal(split_images([5, 3, 9, 1, 7], 0.5, 0)[0], split_images([1, 3, 5, 7, 9], 0.5, 0)[0])
    with pytest.raises(ValueError, match="explain_fraction"):
        split_images([1, 2], 1.0, 0)


def test_metrics():
    assert auroc([1, 1, 0, 0], [0.9, 0.8, 0.1, 0.2]) == 1.0
    assert auroc([1, 0], [0.5, 0.5]) == 0.5
    assert auroc([1, 1, 0, 0], [0.9, 0.1, 0.5, 0.5]) == 0.5
    assert np.isnan(auroc([1, 1], [0.2, 0.3]))
    assert balanced_accuracy([1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]) == pytest.approx(0.75)
    # agrees with the rank-sum definition on random data
    rng = np.random.default_rng(0)
    lab, sc = rng.random(200) < 0.3, np.round(rng.random(200), 1)
    pos, neg = sc[lab], sc[~lab]
    ref = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (len(pos) * len(neg))
    assert auroc(lab, sc) == pytest.approx(ref)


def test_bootstrap_ci_constructed():
    rng = np.random.default_rng(1)
    v = rng.normal(0.7, 0.1, size=400)
    mean, lo, hi = bootstrap_ci(v, n_boot=2000, ci=0.95, seed=0)
    se = v.std(ddof=1) / np.sqrt(len(v))
    assert mean == pytest.approx(v.mean())
    assert lo < mean < hi and (hi - lo) == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert bootstrap_ci(v, 2000, 0.95, 0) == (mean, lo, hi)  # seeded
    m2, lo2, hi2 = bootstrap_ci([*v, np.nan], 2000, 0.95, 0)  # NaN features are left out
    assert m2 == pytest.approx(mean)
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5, 0.5)
    assert all(np.isnan(bootstrap_ci([])))


def test_difference_to_baseline_constructed():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0.8, 0.1, 300), rng.normal(0.7, 0.1, 300)
    se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    rows = [
        {"site": "s", "dict": name, "kind": kind, "balanced_accuracy": v}
        for name, kind, vals in [("sae", "topk_sae", a), ("rnd", "random", b), ("same", "itda", b + 1e-9)]
        for v in vals
    ]
    rows += [{"site": "mlp", "dict": "neurons", "kind": "neurons", "balanced_accuracy": 0.6}]
    out = compare_to_baseline(pd.DataFrame(rows), n_boot=2000).set_index(["site", "dict"])
    sae = out.loc[("s", "sae")]
    assert sae["metric"] == "balanced_accuracy" and sae["separated"]
    assert sae["diff_vs_random"] == pytest.approx(a.mean() - b.mean())
    assert sae["diff_hi"] - sae["diff_lo"] == pytest.approx(2 * 1.96 * se, rel=0.15)  # one run: the plain CI
    assert sae["baseline"] == "rnd" and np.isnan(out.loc[("s", "rnd"), "diff_vs_random"])
    assert (
        not out.loc[("s", "same"), "separated"]
        and out.loc[("s", "same"), "diff_lo"] < 0 < out.loc[("s", "same"), "diff_hi"]
    )
    assert np.isnan(out.loc[("mlp", "neurons"), "diff_vs_random"]) and not out.loc[("mlp", "neurons"), "separated"]


def test_replicates_are_runs_not_pooled_features():
    rows = [
        {"site": "s", "dict": d, "kind": k, "replicate": r, "balanced_accuracy": v, "token_f1": v / 2}
        for d, k, reps in [("sae", "topk_sae", [[1.0, 0.8], [0.6, 0.6, 0.6]]), ("rnd", "random", [[0.5, 0.7]])]
        for r, vals in enumerate(reps)
        for v in vals
    ]
    out = compare_to_baseline(pd.DataFrame(rows), scores=("balanced_accuracy", "token_f1"), n_boot=200)
    ba = out[out["metric"] == "balanced_accuracy"].set_index("dict")
    assert ba.loc["sae", "n_features"] == 5 and ba.loc["sae", "replicates"] == 2
    assert ba.loc["sae", "mean"] == pytest.approx(0.75)  # the mean of the two runs' means
    assert ba.loc["sae", "replicate_means"] == "0.900 / 0.600"
    assert ba.loc["rnd", "replicates"] == 1 and ba.loc["rnd", "replicate_means"] == "0.600"
    assert out[out["metric"] == "token_f1"].set_index("dict").loc["sae", "mean"] == pytest.approx(0.375)


def test_summary_counts_the_latents_left_out_per_method():
    """Each method's row sums its runs' latents and those the protocol could not judge; a method
    whose run summaries lack the counts (written before they existed) gets NaN, not 0."""
    rows = [
        {"site": "s", "dict": d, "kind": k, "replicate": r, "balanced_accuracy": 0.7}
        for d, k in [("sae", "topk_sae"), ("rnd", "random"), ("old", "itda")]
        for r in range(2)
    ]
    cols = ["site", "dict", "replicate", "n_features_total", "n_ineligible_dense", "n_ineligible_rare"]
    runs = pd.DataFrame(
        [
            ("s", "sae", 0, 128, 30, 1),
            ("s", "sae", 1, 128, 10, 0),
            ("s", "rnd", 0, 128, 2, 0),
            ("s", "rnd", 1, 128, 0, 0),
            ("s", "old", 0, 200, np.nan, np.nan),  # a run summary from before the counts existed
            ("t", "sae", 0, 64, 64, 0),
        ],
        columns=cols,
    )
    out = compare_to_baseline(pd.DataFrame(rows), n_boot=50, run_summaries=runs).set_index("dict")
    assert out.loc["sae", ["latents", "left_out_dense", "left_out_rare"]].tolist() == [256, 40, 1]
    assert out.loc["rnd", ["latents", "left_out_dense", "left_out_rare"]].tolist() == [256, 2, 0]
    assert out.loc["old", "latents"] == 200 and np.isnan(out.loc["old", "left_out_dense"])
    assert "latents" not in compare_to_baseline(pd.DataFrame(rows), n_boot=50).columns


def test_failures_counted_not_dropped():
    j = pd.DataFrame(
        {
            "feature": [1] * 4,
            "label": [1, 1, 0, 0],
            "score": [1.0, np.nan, 0.0, 0.0],
            "ok": [True, False, True, True],
            "tokens": 1,
            "cost": 0.0,
        }
    )
    e = pd.DataFrame(
        {
            "feature": [1, 2],
            "explanation": ["x", ""],
            "ok": [True, False],
            "error": [None, "parse"],
            "tokens": 0,
            "cost": 0.0,
        }
    )
    s = feature_scores(j, e, "exclude").set_index("feature")
    assert s.loc[1, "failures"] == 1 and s.loc[1, "balanced_accuracy"] == 1.0
    assert s.loc[2, "failures"] == 1 and np.isnan(s.loc[2, "balanced_accuracy"])
    wrong = feature_scores(j, e, "wrong").set_index("feature")
    assert wrong.loc[1, "balanced_accuracy"] == 0.75
    # an unexplained feature is a wrong answer under `wrong`, not a missing one
    assert wrong.loc[2, "balanced_accuracy"] == 0.0 and wrong.loc[2, "failures"] == 1
    summ = summarise(s.reset_index(), n_boot=100)
    assert summ["failures"] == 2 and summ["explanation_failures"] == 1 and summ["n_scored"] == 1


@pytest.mark.parametrize(
    "text,score",
    [
        ('{"score": 0.8}', 0.8),
        ('```json\n{"score": 1}\n```', 1.0),
        ("0.25", 0.25),
        ("Score: 0.6.", 0.6),
        ("75%", 0.75),
        ("Yes", 1.0),
        ('The answer is {"score": 0}', 0.0),
        ('"0.4"', 0.4),
    ],
)
def test_parse_score(text, score):
    assert parse_score(text) == pytest.approx(score)


@pytest.mark.parametrize("text", ["", None, "maybe 3 or 4", "1.5", '{"score": 2}', "no idea", '{"score": "high"}'])
def test_parse_score_failures(text):
    with pytest.raises(ParseError):
        parse_score(text)


def test_parse_explanation():
    assert parse_explanation('Explanation: "red circles"\nbecause...') == "red circles"
    with pytest.raises(ParseError):
        parse_explanation("   \n")


def test_unknown_backend_lists_valid():
    with pytest.raises(ValueError, match=r"valid backends: \['annotation', 'openai', 'transformers'\]"):
        make_backend({"backend": "gemini"})
    with pytest.raises(ValueError, match="annotator"):
        make_backend({"backend": "annotation"})
    with pytest.raises(ValueError, match="bad options"):
        make_backend({"backend": "openai", "base_url": "http://x/v1", "model": "m", "api_key_env": None, "colour": 1})


class FakeProcessor:
    def __init__(self):
        self.seen = []

    def apply_chat_template(self, messages, **kw):
        self.seen.append(messages)
        return {"input_ids": torch.zeros(1, 7, dtype=torch.long)}

    def batch_decode(self, ids, skip_special_tokens):
        return ['{"score": 0.7}' if "explained as" in str(self.seen[-1]) else "blue squares"]


class FakeModel:
    def generate(self, input_ids, max_new_tokens, do_sample):
        assert not do_sample
        return torch.zeros(1, input_ids.shape[1] + 3, dtype=torch.long)


def test_transformers_backend_plumbing(tmp_path):
    """Prompt rendering, generation call and parsing with a fake model (a real tiny VLM would need
    a processor and chat template on disk; loading is `AutoModelForImageTextToText` offline)."""
    proc = FakeProcessor()
    b = TransformersBackend("unused", model=FakeModel(), processor=proc, cache_dir=tmp_path)
    img = np.zeros((8, 8, 3), np.uint8)
    e = b.explain(3, [Example(1, img, np.ones((2, 2)))])
    assert e.ok and e.text == "blue squares" and e.usage.prompt_tokens == 7 and e.usage.completion_tokens == 3
    content = proc.seen[0][-1]["content"]
    assert content[0]["type"] == "text" and any(c["type"] == "image" for c in content)
    j = b.judge(e, Example(2, img))
    assert j.ok and j.score == 0.7
    n = len(proc.seen)
    assert b.judge(e, Example(2, img)).usage.cached == 1 and len(proc.seen) == n  # cached
    with pytest.raises(ValueError, match="local folder"):
        TransformersBackend(str(tmp_path / "missing"))


def test_negative_quantile_admits_weakly_dense_features():
    """A feature firing weakly everywhere and strongly on red has no all-zero image: ineligible
    with negative_quantile 0, eligible (and explained) when weak images may serve as negatives."""
    pids, labels, masks = shapes_world()
    base = codes_for(pids, masks, n_random=0)
    n, T = len(pids), GRID[0] * GRID[1]
    dense = torch.full((n * T,), 0.05) + torch.from_numpy(masks[..., 0].reshape(-1).astype(np.float32)) * 2
    codes = CodeTable(
        torch.cat([base.indices[:, :1], torch.ones(n * T, 1, dtype=torch.int32)], 1),
        torch.stack([base.values[:, 0], dense], 1),
        base.prompt_id,
        base.step,
        base.token,
        2,
        GRID,
    )
    backend = AnnotationBackend.from_arrays(CONCEPTS, pids, labels, masks)
    cfg = {**CFG, "n_features": 2}
    strict = feature_statistics(codes, negative_quantile=0.0)
    tasks, _ = build_tasks(strict.features, strict.images, codes.prompt_id.numpy(), cfg)
    assert [t.feature for t in tasks] == [0]
    st = feature_statistics(codes, active_quantile=0.9, negative_quantile=0.6)
    tasks, _ = build_tasks(st.features, st.images, codes.prompt_id.numpy(), cfg)
    assert [t.feature for t in tasks] == [0, 1]
    thr = st.features.loc[1, "neg_threshold"]
    im = st.images[st.images["feature"] == 1].set_index("prompt_id")["max"]
    assert (im.loc[tasks[1].negatives] < thr).all()
    heat = heatmaps(codes, [(1, p) for p in tasks[1].explain])
    e = backend.explain(
        1, [Example(p, None, heat[(1, p)]) for p in tasks[1].explain], [Example(p, None) for p in tasks[1].explain_neg]
    )
    assert e.concepts == ("color=red",)
    with pytest.raises(ValueError, match="negative_quantile"):
        feature_statistics(codes, active_quantile=0.5, negative_quantile=0.6)


def test_image_criterion_names_what_the_judge_can_check():
    """A feature that fires on one background token of every image with a square: it detects
    squares, yet its tokens lie outside the square's mask. The image criterion (default) names
    the concept that separates its top images from non-activating ones; the token criterion
    names the mask under the heat."""
    pids, labels, masks = shapes_world(seed=4)
    square = labels[:, 3]
    outside = ~masks[..., 3].reshape(len(pids), -1)  # tokens not on the object
    first = outside.argmax(1)
    heat = np.zeros((len(pids), GRID[0] * GRID[1]), np.float32)
    heat[square, first[square]] = 2.0
    top = [Example(int(p), None, heat[i].reshape(GRID)) for i, p in enumerate(pids) if square[i]][:5]
    neg = [Example(int(p), None) for i, p in enumerate(pids) if not square[i]][:10]
    image = AnnotationBackend.from_arrays(CONCEPTS, pids, labels, masks)
    assert image.explain(7, top, neg).concepts == ("shape=square",)
    token = AnnotationBackend.from_arrays(CONCEPTS, pids, labels, masks, criterion="token")
    assert token.explain(7, top, neg).concepts != ("shape=square",)
    with pytest.raises(ValueError, match="criterion 'pixels' is not one of"):
        AnnotationBackend.from_arrays(CONCEPTS, pids, labels, masks, criterion="pixels")
