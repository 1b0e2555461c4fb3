"""End to end through files: store -> codes/stats -> cards -> explanations/scores, with the
annotation backend and with the openai backend against a stub server (rerun costs nothing)."""

import json

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import save_file
from test_interp_stats import TopKIdentity

from diffdict.interp import resolve_config, run_interp
from diffdict.interp.backends.annotation import ArrayAnnotator
from diffdict.interp.run import explain_and_score
from diffdict.store import ActivationWriter

from openai_stub_server import StubServer

GRID, D, N_IMG, STEPS = (4, 4), 6, 48, 2
KEY = "sk-e2e-SECRET-abcdef"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Images with a red 2x2 square on half of them; dimension 0 of the activations is 'red here'."""
    root = tmp_path_factory.mktemp("world")
    rng = np.random.default_rng(0)
    pids = np.arange(N_IMG) + 500
    red = np.zeros((N_IMG, *GRID), bool)
    has = rng.random(N_IMG) < 0.5
    images = np.full((N_IMG, 32, 32, 3), 90, np.uint8)
    for i in np.flatnonzero(has):
        r, c = rng.integers(0, 3, size=2)
        red[i, r : r + 2, c : c + 2] = True
        images[i, r * 8 : (r + 2) * 8, c * 8 : (c + 2) * 8] = (220, 30, 30)
    T = GRID[0] * GRID[1]
    with ActivationWriter(root / "interp.zarr", D, {"grid": list(GRID), "site": {"name": "s"}}, chunk_rows=64) as w:
        for i, p in enumerate(pids):
            for s in range(STEPS):
                # mostly negative (silent) dimensions; 1.. fire at random, 0 on the red square
                x = rng.normal(-1, 0.3, (T, D)).astype(np.float32)
                x[:, 1:] += 2 * (rng.random((T, D - 1)) < 0.15)
                x[:, 0] += 4 * red[i].reshape(-1)
                w.append(x, prompt_id=p, step=s, token=np.arange(T))
    shards = []
    for j, sl in enumerate([slice(0, 24), slice(24, 48)]):
        save_file({"prompt_id": pids[sl], "images": images[sl]}, str(root / f"{j:03d}.safetensors"))
        shards.append(root / f"{j:03d}.safetensors")
    concepts = ["color=red", "color=none"]
    labels = np.stack([has, ~has], 1)
    masks = np.stack([red, np.broadcast_to(~has[:, None, None], red.shape)], -1)
    return {
        "root": root,
        "store": root / "interp.zarr",
        "shards": shards,
        "annotator": ArrayAnnotator(concepts, pids, labels, masks),
    }


CFG = {
    "n_features": 6,
    "n_explain": 3,
    "n_pos": 3,
    "n_neg": 3,
    "n_mid": 2,
    "min_active_tokens": 6,
    "batch_size": 50,
    "n_boot": 200,
    "image_size": 64,
    "card_size": 64,
}


class PixelAnnotator:
    """The world annotator's interface (concepts, annotate, token_masks), computed from pixels."""

    concepts = ["color=red", "color=none"]

    def token_masks(self, images, grid):
        red = (images[..., 0] > 150) & (images[..., 1] < 100)  # [B, H, W]
        B, H, W = red.shape
        tok = red.reshape(B, grid[0], H // grid[0], grid[1], W // grid[1]).mean((2, 4)) > 0.5
        has = tok.any((1, 2))
        return np.stack([tok, np.broadcast_to(~has[:, None, None], tok.shape)], -1)

    def annotate(self, images):
        m = self.token_masks(images, GRID).any((1, 2))
        return [{c for c, on in zip(self.concepts, row) if on} for row in m]


@pytest.mark.parametrize("source", ["arrays", "annotator"])
def test_annotation_end_to_end(world, tmp_path, source):
    out = tmp_path / "interp"
    annotator = world["annotator"] if source == "arrays" else PixelAnnotator()
    summary = run_interp(
        TopKIdentity(D, k=2),
        world["store"],
        world["shards"],
        out,
        {**CFG, "explainer": {"backend": "annotation"}},
        annotator=annotator,
    )
    for f in (
        "codes.safetensors",
        "stats.parquet",
        "image_stats.parquet",
        "tasks.json",
        "explanations.parquet",
        "judgements.parquet",
        "scores.parquet",
        "summary.json",
    ):
        assert (out / f).is_file(), f
    scores = pd.read_parquet(out / "scores.parquet").set_index("feature")
    assert scores.loc[0, "explanation"] == "color=red" and scores.loc[0, "balanced_accuracy"] == 1.0
    assert scores.loc[0, "token_f1"] > 0.8  # it fires on the red tokens themselves
    assert json.loads((out / "summary.json").read_text())["n_sampled"] == summary["n_sampled"] >= 1
    cards = sorted((out / "cards").glob("feature_*.png"))
    assert len(cards) == summary["n_sampled"] and (out / "cards" / "feature_000000.png").exists()
    stats = pd.read_parquet(out / "stats.parquet")
    assert len(stats) == D and stats.loc[0, "frequency"] > 0
    # leak-free as written: no judged image was shown to the explainer of its feature
    judged = pd.read_parquet(out / "judgements.parquet")
    shown = pd.read_parquet(out / "explanations.parquet").set_index("feature")["explain_prompt_ids"]
    for f, g in judged.groupby("feature"):
        assert not set(g["prompt_id"]) & set(shown[f])
    assert set(judged["kind"]) <= {"positive", "random", "other"}


def test_openai_end_to_end_rerun_is_free(world, tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFDICT_E2E_KEY", KEY)
    feats = tmp_path / "features"
    with StubServer(judge_score=lambda body: 0.8) as server:
        cfg = {
            **CFG,
            "cache_dir": str(tmp_path / "cache"),
            "explainer": {
                "backend": "openai",
                "base_url": server.base_url,
                "model": "stub",
                "api_key_env": "DIFFDICT_E2E_KEY",
                "backoff_s": 0.01,
                "max_concurrency": 3,
                "price_prompt_per_1k": 0.5,
            },
        }
        server.script = ["429", "empty"]  # one explanation comes back empty
        s1 = run_interp(TopKIdentity(D, k=2), world["store"], world["shards"], feats, cfg)
        n1 = len(server.requests)
        assert n1 == s1["requests"] > 0 and s1["cost_spent"] > 0
        assert s1["failures"] == s1["explanation_failures"] == 1  # counted, not dropped
        expl = pd.read_parquet(feats / "explanations.parquet")
        assert (~expl["ok"]).sum() == 1 and expl.loc[~expl["ok"], "error"].str.contains("empty").all()
        s2 = explain_and_score(feats, world["shards"], tmp_path / "rerun", cfg)
        assert len(server.requests) == n1, "a rerun must be served by the cache"
        assert s2["requests"] == 0 and s2["cost_spent"] == 0 and s2["cached"] > 0
        assert s2["balanced_accuracy"] == s1["balanced_accuracy"] or np.isnan(s1["balanced_accuracy"])
        assert all(r["headers"]["Authorization"] == f"Bearer {KEY}" for r in server.requests)
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f
    assert json.loads((feats / "summary.json").read_text())["explainer"]["api_key_env"] == "DIFFDICT_E2E_KEY"


def test_config_errors():
    with pytest.raises(ValueError, match="valid keys"):
        resolve_config({"n_featurez": 3})
    with pytest.raises(ValueError, match="failure_policy"):
        resolve_config({"failure_policy": "ignore"})


def test_token_judge_tells_where_a_feature_fires():
    """Two features that fire only on red images pass the image-level judge alike; the token
    judge gives 1 to the one on the red tokens and little to the one on random tokens."""
    from types import SimpleNamespace

    from diffdict.interp.backends.annotation import AnnotationBackend
    from diffdict.interp.backends.base import Explanation
    from diffdict.interp.run import token_scores

    rng = np.random.default_rng(0)
    n, grid = 16, (6, 6)
    red = np.zeros((n, *grid), bool)
    red[:8, 1:3, 2:4] = True  # images 0..7 hold a red 2x2 patch
    labels = np.stack([red.any((1, 2)), ~red.any((1, 2))], 1)
    masks = np.stack([red, np.broadcast_to(labels[:, 1, None, None], red.shape)], -1)
    judge = AnnotationBackend.from_arrays(["color=red", "color=none"], np.arange(n), labels, masks)
    on_red = {(0, p): red[p].astype(np.float32) for p in range(n)}
    scattered = {(1, p): (rng.random(grid) < 0.1).astype(np.float32) * (p < 8) for p in range(n)}
    tasks = [
        SimpleNamespace(feature=f, positives=list(range(4, 8)), negatives=list(range(8, 12)), vmax=1.0) for f in (0, 1)
    ]
    expl = [Explanation(f, "color=red", concepts=("color=red",)) for f in (0, 1)]
    images = {p: np.zeros((8, 8, 3), np.uint8) for p in range(n)}
    t = token_scores(
        judge, tasks, expl, {**on_red, **scattered}, pd.Series([0.5, 0.5]), images, 64, "exclude"
    ).set_index("feature")
    assert t.loc[0, "token_f1"] == 1.0 and t.loc[0, "token_precision"] == 1.0
    assert t.loc[1, "token_f1"] < 0.3
    # a failed explanation: NaN when excluded, 0 when it counts as wrong
    failed = [Explanation(0, "", ok=False, error="x"), expl[1]]
    assert np.isnan(
        token_scores(judge, tasks, failed, {**on_red, **scattered}, pd.Series([0.5, 0.5]), images, 64, "exclude").loc[
            0, "token_f1"
        ]
    )
    assert (
        token_scores(judge, tasks, failed, {**on_red, **scattered}, pd.Series([0.5, 0.5]), images, 64, "wrong").loc[
            0, "token_f1"
        ]
        == 0.0
    )
