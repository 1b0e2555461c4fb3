"""Sparse codes and feature statistics: vectorised results equal a naive reference."""

import numpy as np
import pytest
import torch

from diffdict.dictionaries.base import Dictionary, SparseCodes
from diffdict.interp import render
from diffdict.interp.codes import CodeTable, encode_batches
from diffdict.interp.stats import feature_statistics, heatmaps


def random_codes(seed=0, n_img=12, steps=2, grid=(3, 4), k=3, F=20, neg=True):
    g = torch.Generator().manual_seed(seed)
    T = grid[0] * grid[1]
    pid = torch.arange(n_img).repeat_interleave(steps * T) * 7 + 100  # non-contiguous ids
    step = torch.arange(steps).repeat_interleave(T).repeat(n_img)
    tok = torch.arange(T).repeat(n_img * steps)
    N = len(pid)
    idx = torch.stack([torch.randperm(F, generator=g)[:k] for _ in range(N)])
    val = torch.rand(N, k, generator=g) * 3
    val[torch.rand(N, k, generator=g) < 0.3] = 0  # padding
    if neg:
        val[torch.rand(N, k, generator=g) < 0.1] *= -1  # signed codes do not fire
    return CodeTable(idx.int(), val, pid, step.short(), tok.int(), F, grid)


def naive(codes, active_q, qs):
    F = codes.n_features
    tokact = {}  # (f, pid, tok) -> max over steps
    fired = np.zeros(F)
    for r in range(len(codes)):
        for f, v in zip(codes.indices[r].tolist(), codes.values[r].tolist()):
            if v > 0:
                fired[f] += 1
                key = (f, int(codes.prompt_id[r]), int(codes.token[r]))
                tokact[key] = max(tokact.get(key, 0.0), v)
    out = {}
    for f in range(F):
        vals = np.array([v for (ff, _, _), v in tokact.items() if ff == f])
        if len(vals) == 0:
            continue
        thr = np.quantile(vals, active_q)
        per_img = {}
        for (ff, p, _t), v in tokact.items():
            if ff == f:
                m, n = per_img.get(p, (0.0, 0))
                per_img[p] = (max(m, v), n + (v >= thr))
        out[f] = dict(
            freq=fired[f] / len(codes),
            max=vals.max(),
            q=np.quantile(vals, qs),
            thr=thr,
            n_active=int((vals >= thr).sum()),
            per_img=per_img,
        )
    return out


@pytest.mark.parametrize("active_q", [0.0, 0.5, 0.9])
def test_stats_match_naive(active_q):
    codes = random_codes()
    st = feature_statistics(codes, quantiles=(0.5, 0.9), active_quantile=active_q)
    ref = naive(codes, active_q, [0.5, 0.9])
    fe = st.features.set_index("feature")
    for f in range(codes.n_features):
        if f not in ref:
            assert fe.loc[f, "n_nonzero_tokens"] == 0 and fe.loc[f, "frequency"] == 0
            continue
        r = ref[f]
        assert fe.loc[f, "frequency"] == pytest.approx(r["freq"])
        assert fe.loc[f, "max"] == pytest.approx(r["max"])
        assert [fe.loc[f, "q50"], fe.loc[f, "q90"]] == pytest.approx(r["q"], rel=1e-5)
        assert fe.loc[f, "threshold"] == pytest.approx(r["thr"], rel=1e-5)
        assert fe.loc[f, "n_active_tokens"] == r["n_active"]
        im = st.images[st.images["feature"] == f].set_index("prompt_id")
        assert set(im.index) == set(r["per_img"])
        for p, (m, n) in r["per_img"].items():
            assert im.loc[p, "max"] == pytest.approx(m) and im.loc[p, "n_active"] == n


def test_heatmaps_match_codes():
    codes = random_codes(neg=False)
    f = int(codes.indices[0, 0])
    pids = codes.prompt_id.unique().tolist()
    hm = heatmaps(codes, [(f, p) for p in pids] + [(f, 99999)])
    gw = codes.grid[1]
    for p in pids:
        ref = np.zeros(codes.grid, np.float32)
        for r in torch.nonzero(codes.prompt_id == p).flatten().tolist():
            for ff, v in zip(codes.indices[r].tolist(), codes.values[r].tolist()):
                if ff == f and v > 0:
                    t = int(codes.token[r])
                    ref[t // gw, t % gw] = max(ref[t // gw, t % gw], v)
        np.testing.assert_allclose(hm[(f, p)], ref, rtol=1e-6)
    assert not hm[(f, 99999)].any()


class TopKIdentity(Dictionary):
    """Features = input dimensions; codes = the top-k positive coordinates (tests only, unregistered)."""

    def __init__(self, d_model=6, k=2):
        super().__init__()
        self.d_model = self.n_features = d_model
        self.k = k

    def encode(self, x):
        v, i = x.clamp(min=0).topk(self.k, dim=-1)
        return SparseCodes(i, v)

    def decode(self, codes):
        return codes.to_dense(self.n_features)

    @property
    def directions(self):
        return torch.eye(self.d_model)


def test_encode_and_roundtrip(tmp_path):
    x = torch.randn(50, 6)
    meta = {"prompt_id": torch.arange(50) // 10, "step": torch.zeros(50), "token": torch.arange(50) % 10}
    batches = [(x[i : i + 16], {k: v[i : i + 16] for k, v in meta.items()}) for i in range(0, 50, 16)]
    codes = encode_batches(TopKIdentity(), batches, grid=(2, 5), dtype="float16")
    assert codes.indices.dtype == torch.int32 and codes.values.dtype == torch.float16
    torch.testing.assert_close(codes.values.float(), x.clamp(min=0).topk(2, -1).values, atol=1e-2, rtol=1e-2)
    codes.save(tmp_path / "codes.safetensors")
    back = CodeTable.load(tmp_path / "codes.safetensors")
    assert back.grid == (2, 5) and back.n_features == 6
    for a in ("indices", "values", "prompt_id", "step", "token"):
        assert torch.equal(getattr(back, a), getattr(codes, a).to(getattr(back, a).dtype))
    with pytest.raises(ValueError, match="codes_dtype"):
        encode_batches(TopKIdentity(), batches, grid=(2, 5), dtype="int8")


def test_overlay_is_blue_where_active():
    img = np.full((32, 32, 3), 200, np.uint8)
    heat = np.zeros((2, 2), np.float32)
    heat[0, 0] = 2.0
    out = render.overlay(img, heat, vmax=2.0, size=64)
    assert out.shape[0] == 64 and out.shape[1] > 64  # colour bar to the right
    hot, cold = out[10, 10].astype(int), out[50, 50].astype(int)
    assert hot[2] > hot[0] + 100 and (cold == 200).all()
    assert render.png_bytes(out)[:4] == b"\x89PNG"
