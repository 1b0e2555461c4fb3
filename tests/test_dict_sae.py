"""TopK SAE: initialisation, loss, folding, recovery of a planted dictionary, resume, NaN."""

import pandas as pd
import pytest
import torch

from diffdict.dictionaries import NonFiniteActivationError, TrainingInterrupted, load_dictionary
from diffdict.dictionaries.kernels import SparsePattern
from diffdict.dictionaries.sae import TopKSAE
from diffdict.dictionaries.synthetic import planted
from diffdict.dictionaries.train_sae import SAEConfig, geometric_median, sae_loss, train_sae


def tiny_sae(d=8, n=32, k=3, seed=0):
    sae = TopKSAE(d, n, k)
    sae.init_weights(torch.zeros(d), torch.Generator().manual_seed(seed))
    return sae


def test_init_unit_decoder_tied_encoder():
    sae = tiny_sae()
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(32))
    torch.testing.assert_close(sae.W_enc, sae.W_dec)


def test_encoder_init_norm_scales_only_the_encoder(tmp_path):
    sae = TopKSAE(8, 32, 3)
    sae.init_weights(torch.zeros(8), torch.Generator().manual_seed(0), encoder_norm=0.5)
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(32))
    torch.testing.assert_close(sae.W_enc, 0.5 * sae.W_dec)
    with pytest.raises(ValueError, match="encoder_init_norm=0 must be > 0"):
        SAEConfig(n_features=32, k=3, encoder_init_norm=0)
    # the trainer passes it on: one step at lr 0 leaves the initial weights (folded: scale 1 data)
    x = torch.randn(512, 8)
    cfg = SAEConfig(n_features=32, k=3, batch_size=256, tokens=256, lr=0.0, normalize="none", encoder_init_norm=0.5)
    trained = train_sae(lambda e: [x], 8, cfg, progress=False)
    torch.testing.assert_close(trained.W_enc.norm(dim=1), torch.full((32,), 0.5))


def test_init_distribution_draws_the_rows_entries():
    normal, uniform = TopKSAE(64, 512, 3), TopKSAE(64, 512, 3)
    normal.init_weights(torch.zeros(64), torch.Generator().manual_seed(0), distribution="normal")
    uniform.init_weights(torch.zeros(64), torch.Generator().manual_seed(0))  # the default
    expected = torch.rand(512, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    torch.testing.assert_close(uniform.W_dec, expected / expected.norm(dim=1, keepdim=True))
    torch.testing.assert_close(uniform.W_enc, uniform.W_dec)
    # bounded entries: no unit row leans as far into one dimension as Gaussian rows' tails do
    assert uniform.W_dec.abs().max() < 0.75 * normal.W_dec.abs().max()
    with pytest.raises(ValueError, match=r"init_distribution 'cube' is not one of \['normal', 'uniform'\]"):
        SAEConfig(init_distribution="cube")
    # the trainer passes it on: one step at lr 0 leaves the initial rows
    x = torch.randn(512, 64)
    cfg = SAEConfig(
        n_features=512, k=3, batch_size=256, tokens=256, lr=0.0, normalize="none", init_distribution="normal"
    )
    trained = train_sae(lambda e: [x], 64, cfg, progress=False)
    torch.testing.assert_close(trained.W_dec, normal.W_dec)
    assert SAEConfig().init_distribution == "uniform"


def test_geometric_median_is_robust_to_outliers():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(999, 4, generator=g) * 0.1 + torch.tensor([1.0, 2.0, 3.0, 4.0])
    x = torch.cat([x, torch.full((50, 4), 1e4)])  # the mean would be dragged to ~480
    assert (geometric_median(x) - torch.tensor([1.0, 2.0, 3.0, 4.0])).norm() < 0.1


def test_auxk_is_zero_when_nothing_is_dead_and_positive_otherwise():
    sae = tiny_sae()
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
    cfg = SAEConfig(n_features=32, k=3, k_aux=4)
    loss, fvu, auxk, *_ = sae_loss(sae, x, torch.zeros(32, dtype=torch.bool), cfg)
    assert auxk.item() == 0.0 and loss.item() == fvu.item()
    dead = torch.zeros(32, dtype=torch.bool)
    dead[:16] = True
    loss, fvu, auxk, *_ = sae_loss(sae, x, dead, cfg)
    assert auxk.item() > 0 and loss.item() == pytest.approx(fvu.item() + auxk.item() / 32)
    loss.backward()
    assert sae.W_enc.grad[:16].abs().sum() > 0  # dead latents receive gradient through AuxK


def test_auxk_normalizer_divides_by_the_residual_or_the_total_variance():
    sae = tiny_sae()
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
    dead = torch.zeros(32, dtype=torch.bool)
    dead[:16] = True
    _, _, residual, *_ = sae_loss(sae, x, dead, SAEConfig(n_features=32, k=3, k_aux=4))
    _, _, total, *_ = sae_loss(sae, x, dead, SAEConfig(n_features=32, k=3, k_aux=4, auxk_normalizer="total"))
    # AuxK(total) = AuxK(residual) x (the residual's variance / the batch's)
    with torch.no_grad():
        e = x - sae.decode(sae.encode(x))
        ratio = (e - e.mean(0)).pow(2).sum() / (x - x.mean(0)).pow(2).sum()
    assert total.item() == pytest.approx(residual.item() * ratio.item(), rel=1e-4)
    with pytest.raises(ValueError, match=r"auxk_normalizer 'batch' is not one of \['residual', 'total'\]"):
        SAEConfig(auxk_normalizer="batch")


@pytest.mark.parametrize("reach", ["all", "latents", "decoder"])
def test_auxk_grad_chooses_what_auxk_trains(reach):
    """AuxK alone: only the dead latents' parameters move, and b_dec (through the pre-activations of
    x - b_dec) or their encoder only where ``auxk_grad`` lets it; what it reaches gets the same gradient."""
    x = torch.randn(64, 8, generator=torch.Generator().manual_seed(1))
    dead = torch.zeros(32, dtype=torch.bool)
    dead[:16] = True
    grads = {}
    for r in ("all", reach):
        sae = tiny_sae()
        with torch.no_grad():
            sae.b_dec.normal_(generator=torch.Generator().manual_seed(2))
        _, _, auxk, *_ = sae_loss(sae, x, dead, SAEConfig(n_features=32, k=3, k_aux=4, auxk_grad=r))
        auxk.backward()
        grads[r] = {n: p.grad if p.grad is not None else torch.zeros_like(p) for n, p in sae.named_parameters()}
    g, full = grads[reach], grads["all"]
    for name in ("W_enc", "W_dec", "b_enc"):
        assert g[name][16:].abs().max() == 0  # live latents: untouched by AuxK
    assert full["b_dec"].abs().sum() > 0 and full["W_enc"][:16].abs().sum() > 0
    assert torch.allclose(g["W_dec"][:16], full["W_dec"][:16]) and g["W_dec"][:16].abs().sum() > 0
    encoder = reach != "decoder"
    for name in ("W_enc", "b_enc"):
        assert torch.allclose(g[name], full[name] if encoder else torch.zeros_like(full[name]))
    assert (g["b_dec"].abs().sum() > 0) == (reach == "all")
    with pytest.raises(ValueError, match=r"auxk_grad 'bias' is not one of \['all', 'latents', 'decoder'\]"):
        SAEConfig(auxk_grad="bias")
    assert SAEConfig().auxk_grad == "latents"  # adopted 2026-12-06 (benchmarks/results/auxk_grad.md)


def test_parallel_gradient_removed():
    sae = tiny_sae()
    sae.W_dec.grad = torch.randn_like(sae.W_dec)
    sae.remove_gradient_parallel_to_decoder_directions()
    assert (sae.W_dec.grad * sae.W_dec).sum(1).abs().max() < 1e-5


def test_fold_normalisation_acts_on_raw_space():
    sae = tiny_sae()
    with torch.no_grad():
        sae.b_enc.uniform_(-0.1, 0.1)
        sae.b_dec.normal_()
    mean, scale = torch.randn(8) * 100, torch.rand(8) * 10 + 0.1
    x = mean + scale * torch.randn(50, 8)
    folded = sae.fold_normalisation(mean, scale)
    codes, codes_n = folded.encode(x), sae.encode((x - mean) / scale)
    torch.testing.assert_close(codes.indices, codes_n.indices)
    torch.testing.assert_close(codes.values, codes_n.values, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(folded.decode(codes), mean + scale * sae.decode(codes_n), rtol=1e-4, atol=1e-3)


def test_recovers_planted_atoms():
    p = planted(d=32, n_atoms=64, k=3, noise=0.02, n_massive=2, seed=0)
    # the massive dimensions here scale the planted atoms themselves: the one data model where
    # per-dimension standardisation is right (benchmarks/results/concept_sweep.md)
    cfg = SAEConfig(n_features=128, k=3, batch_size=256, tokens=40_000, lr=1e-2, log_every=20, normalize="dim")
    sae = train_sae(p.factory(8192, batch=500), 32, cfg, progress=False)
    # planted atoms in model space (massive dims stretch them)
    truth = torch.nn.functional.normalize(p.atoms * p.massive, dim=1)
    cos = (sae.directions @ truth.T).max(0).values
    assert (cos >= 0.9).float().mean() >= 0.8, cos
    x = p.sample(2000, 7)
    fvu = ((x - sae(x)) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert fvu < 0.2


def _run(p, ckpt, log_every=5, batch_topk=False, threshold="moving_average", **kw):
    cfg = SAEConfig(
        n_features=48,
        k=2,
        batch_size=64,
        tokens=64 * 30,
        lr=1e-3,
        checkpoint_every=10,
        log_every=log_every,
        dead_tokens=200,
        k_aux=8,
        lr_warmup_steps=5,
        batch_topk=batch_topk,
        batch_topk_threshold=threshold,
    )
    return train_sae(p.factory(1000, batch=100), 16, cfg, checkpoint_dir=ckpt, progress=False, **kw)


@pytest.mark.parametrize(
    "batch_topk, threshold", [(False, "moving_average"), (True, "moving_average"), (True, "calibrated")]
)
def test_resume_after_interruption_gives_identical_weights(tmp_path, batch_topk, threshold):
    p = planted(d=16, n_atoms=24, k=2, seed=3)
    run = dict(batch_topk=batch_topk, threshold=threshold)
    straight = _run(p, tmp_path / "a", log_path=tmp_path / "a.csv", **run)
    with pytest.raises(TrainingInterrupted):
        _run(p, tmp_path / "b", stop_after=17, **run)  # killed after step 17; last checkpoint at 10
    ck = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=False)
    assert ck["step"] == 10 and ck["epoch"] == 0 and ck["offset"] == 640
    assert ("threshold" in ck["model"]) == batch_topk  # BatchTopK's threshold resumes with the weights
    # a setting at its inert default is not in the signature: checkpoints from before it existed resume
    assert ("batch_topk_threshold" in ck["signature"]["cfg"]) == (threshold != "moving_average")
    resumed = _run(p, tmp_path / "b", log_path=tmp_path / "b.csv", **run)
    for name, v in straight.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[name]), name
    assert (tmp_path / "a.csv").read_text().splitlines()[0].startswith("step,tokens,loss,fvu")
    assert len((tmp_path / "b.csv").read_text().splitlines()) == len((tmp_path / "a.csv").read_text().splitlines())


def test_log_counts_latents_that_die_and_revive_across_a_resume(tmp_path):
    """Each row's died / revived are the changes of the dead set since the previous row: their running
    difference is the dead count, and with AuxK some dead latents come back. A checkpoint taken between
    rows (step 20; rows every 3 steps, latents change state at steps 19 and 20 here) keeps the dead set
    of the last row, so a resumed run logs the same changes."""
    p = planted(d=16, n_atoms=24, k=2, seed=3)
    _run(p, tmp_path / "a", log_every=3, log_path=tmp_path / "a.csv")
    with pytest.raises(TrainingInterrupted):
        _run(p, tmp_path / "b", log_every=3, stop_after=23)
    _run(p, tmp_path / "b", log_every=3, log_path=tmp_path / "b.csv")
    a, b = (pd.read_csv(tmp_path / f"{n}.csv") for n in "ab")
    dead = (a["dead_fraction"] * 48).round().astype(int)
    assert (a["died"].cumsum() - a["revived"].cumsum()).tolist() == dead.tolist()
    assert a["died"].sum() > 0 and a["revived"].sum() > 0
    cols = ["step", "tokens", "dead_fraction", "revived", "died"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def test_checkpoint_for_other_settings_is_ignored(tmp_path):
    p = planted(d=16, n_atoms=24, k=2, seed=3)
    with pytest.raises(TrainingInterrupted):
        _run(p, tmp_path, stop_after=12)
    cfg = SAEConfig(n_features=40, k=2, batch_size=64, tokens=64 * 3, checkpoint_every=10)
    sae = train_sae(p.factory(1000, batch=100), 16, cfg, checkpoint_dir=tmp_path, progress=False)
    assert sae.n_features == 40


def test_checkpoint_of_other_data_is_not_resumed(tmp_path):
    """A finished checkpoint with the same settings but other activations (e.g. a changed train
    split) must not be 'resumed' into a model that never saw the new data."""
    old, new = planted(d=16, n_atoms=24, k=2, seed=3), planted(d=16, n_atoms=24, k=2, seed=4)
    _run(old, tmp_path / "ckpt")
    rerun = _run(new, tmp_path / "ckpt")
    fresh = _run(new, tmp_path / "fresh")
    for name, v in fresh.state_dict().items():
        assert torch.equal(v, rerun.state_dict()[name]), name


def test_nan_activation_names_site_and_row():
    p = planted(d=8, n_atoms=8, k=2)
    data = p.sample(600, 1)
    data[437, 3] = float("nan")

    def factory(epoch):
        for a in range(0, 600, 100):
            yield {"x": data[a : a + 100], "row": torch.arange(a, a + 100) + 10_000}

    cfg = SAEConfig(n_features=16, k=2, batch_size=64, tokens=5000, init_tokens=64)
    with pytest.raises(NonFiniteActivationError, match=r"site 'double7_img'.*store row 10437"):
        train_sae(factory, 8, cfg, site="double7_img", progress=False)


def test_lr_schedule_defaults():
    cfg = SAEConfig(n_features=2**16, tokens=1024 * 100, lr_warmup_steps=10, lr_decay_frac=0.2)
    assert cfg.lr_value == pytest.approx(1e-4)
    assert cfg.lr_at(0) == pytest.approx(1e-5) and cfg.lr_at(50) == pytest.approx(1e-4)
    assert cfg.lr_at(90) == pytest.approx(0.5e-4) and cfg.lr_at(99) > 0


def _batch_topk_sae(threshold=0.0):
    """d 4, 8 latents, k 2, max_k 4: latent i reads dimension i % 4 with sign +1 (i < 4) or -1."""
    sae = TopKSAE(4, 8, 2, batch_topk=True, max_k=4)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([torch.eye(4), -torch.eye(4)]))
        sae.W_dec.copy_(sae.W_enc)
        sae.threshold.fill_(threshold)
    return sae


def test_batch_topk_training_keeps_the_batch_s_largest_activations():
    """Known answer: a busy token takes four latents and a quiet one none (k 2 per token on average)."""
    sae = _batch_topk_sae().train()
    x = torch.tensor([[4.0, 3.0, 2.0, 1.5], [0.5, 0.4, 0.3, 0.2]])
    patterns = SparsePattern(), SparsePattern()
    values, index, _, _ = sae.encode_topk(x, patterns=patterns)
    assert index.shape == (4,) and patterns[0].offsets.tolist() == [0, 4]  # ragged: 4 entries, then none
    torch.testing.assert_close(values.sort().values, x[0].sort().values)
    assert sorted(index.tolist()) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="ragged codes need `patterns`"):
        sae.encode_topk(x)
    sae.update_threshold(values, 1.0)  # the smallest kept activation, for every latent
    assert sae.threshold.tolist() == [1.5] * 8
    sae.update_threshold(torch.tensor([[0.5, 0.0]]), 0.5)  # a moving average; zeros are padding
    assert sae.threshold.tolist() == [1.0] * 8


def test_batch_topk_inference_keeps_what_passes_the_threshold():
    sae = _batch_topk_sae(threshold=1.0).eval()
    x = torch.tensor([[4.0, 3.0, 2.0, 1.5], [0.5, 0.4, 0.3, 0.2], [2.0, -3.0, 0.9, 1.0]])
    dense = sae.encode(x).to_dense(8)
    expected = torch.tensor(
        [[4.0, 3.0, 2.0, 1.5, 0, 0, 0, 0], [0.0] * 8, [2.0, 0, 0, 0, 0, 3.0, 0, 0]]  # 1.0 is not above 1.0
    )
    torch.testing.assert_close(dense, expected)
    sae.threshold[0] = 5.0  # per latent (a JumpReLU read from SAELens): latent 0 now needs more than 4
    assert sae.encode(x[:1]).to_dense(8)[0].tolist() == [0, 3.0, 2.0, 1.5, 0, 0, 0, 0]
    capped = _batch_topk_sae(threshold=0.0).eval()
    capped.max_k = 2  # more latents above threshold than the width: a token keeps its largest
    assert capped.encode(x[:1]).to_dense(8)[0].tolist() == [4.0, 3.0, 0, 0, 0, 0, 0, 0]
    with pytest.raises(ValueError, match=r"max_k=1 must be >= k=2"):
        TopKSAE(4, 8, 2, batch_topk=True, max_k=1)
    with pytest.raises(ValueError, match=r"max_k=9 must be in k=2..n_features=8"):
        SAEConfig(n_features=8, k=2, max_k=9)


def test_batch_topk_fold_and_save_keep_the_threshold(tmp_path):
    sae = _batch_topk_sae(threshold=0.7)
    mean, scale = torch.randn(4), torch.rand(4) + 0.5
    x = mean + scale * torch.randn(64, 4)
    folded = sae.fold_normalisation(mean, scale)
    torch.testing.assert_close(folded.encode(x).to_dense(8), sae.encode((x - mean) / scale).to_dense(8))
    folded.save(tmp_path / "d.safetensors")
    back = load_dictionary(tmp_path / "d.safetensors")
    assert (back.batch_topk, back.max_k) == (True, 4) and back.threshold.tolist() == pytest.approx([0.7] * 8)
    torch.testing.assert_close(back.encode(x).to_dense(8), folded.encode(x).to_dense(8))


def test_a_threshold_saved_as_one_number_loads_for_every_latent(tmp_path):
    """BatchTopK SAEs saved before thresholds were per latent (2026-12-06) still load, with the same codes."""
    sae = _batch_topk_sae(threshold=0.7)
    state = {**sae.state_dict(), "threshold": torch.tensor(0.7)}
    old = _batch_topk_sae()
    old.load_state_dict(state)
    assert old.threshold.tolist() == pytest.approx([0.7] * 8)
    x = torch.randn(16, 4)
    torch.testing.assert_close(old.encode(x).to_dense(8), sae.encode(x).to_dense(8))


def test_batch_topk_trains_k_per_token_on_average():
    """Trained, the learnt threshold keeps about k latents per token, more on some tokens than on others."""
    p = planted(d=16, n_atoms=24, k=2, seed=3)
    cfg = SAEConfig(n_features=48, k=2, batch_size=64, tokens=64 * 300, batch_topk=True, lr=3e-3)
    sae = train_sae(p.factory(4000, batch=200), 16, cfg, progress=False)
    codes = sae.encode(p.sample(4000, 1))
    l0 = (codes.values > 0).sum(1).float()
    assert sae.max_k == 8 and codes.indices.shape == (4000, 8) and float(sae.threshold.min()) > 0
    assert len(set(sae.threshold.tolist())) == 1  # trained, one threshold for every latent
    assert 1.5 <= float(l0.mean()) <= 2.5, float(l0.mean())
    assert int(l0.max()) > 2 and int(l0.min()) < 2


def test_calibrated_threshold_keeps_k_per_token_counting_the_max_k_cap():
    """Known answer: 4 tokens offer 4 + 2 + 0 + 3 positive activations; k 2 x 4 tokens = 8 kept, so the
    threshold is the 9th largest candidate. A token's latents beyond its max_k largest do not count."""
    sae = _batch_topk_sae().eval()  # latent i reads dimension i % 4, signed: the negative half stays off here
    x = torch.tensor([[4.0, 3.0, 2.0, 1.5], [0.5, 0.4, 0.0, 0.0], [0.0] * 4, [0.3, 0.2, 0.1, 0.0]])
    theta = sae.calibrate_threshold(x)
    assert theta == pytest.approx(0.1) and sae.threshold.tolist() == pytest.approx([0.1] * 8)
    assert sorted(sae.encode(x).values[sae.encode(x).values > 0].tolist()) == pytest.approx(
        [0.2, 0.3, 0.4, 0.5, 1.5, 2.0, 3.0, 4.0]
    )
    capped = _batch_topk_sae().eval()
    capped.max_k = 2  # candidates 4, 3 | 0.5, 0.4 | 0, 0 | 0.3, 0.2: fewer than 8 positive, so 0 keeps them all
    assert capped.calibrate_threshold(x) == 0.0 and int((capped.encode(x).values > 0).sum()) == 6
    with pytest.raises(ValueError, match="only a BatchTopK SAE has a threshold"):
        tiny_sae().calibrate_threshold(x)


@pytest.mark.parametrize("max_k", [4, 8, 32])
def test_calibrated_threshold_gives_exactly_k_on_its_sample(max_k):
    """Continuous activations (no ties): after calibrating on x, x's tokens keep k each on average,
    whether max_k binds some tokens or none, computed in chunks or at once."""
    torch.manual_seed(0)
    sae = TopKSAE(16, 64, 4, batch_topk=True, max_k=max_k)
    sae.init_weights(torch.zeros(16), torch.Generator().manual_seed(1))
    x = torch.randn(300, 16) * torch.rand(300, 1) * 3  # busy and quiet tokens
    theta = sae.eval().calibrate_threshold(x, max_elements=64 * 7)  # 7 tokens per chunk
    assert int((sae.encode(x).values > 0).sum()) == 4 * 300
    assert sae.calibrate_threshold(x) == theta


def test_training_with_a_calibrated_threshold_keeps_k_where_the_moving_average_lags():
    """A short run: the moving average of the batches' smallest kept activation ends above what keeps
    k per token (activations shrink as training goes), so held-out tokens keep fewer; calibrated
    after training, they keep k on average. Both train the same weights."""
    p = planted(d=16, n_atoms=24, k=4, seed=3)
    held_out = p.sample(4000, 1)

    def fit(how):
        cfg = SAEConfig(
            n_features=64,
            k=4,
            batch_size=64,
            tokens=64 * 60,
            batch_topk=True,
            lr=3e-3,
            batch_topk_threshold=how,
            init_tokens=4000,
        )
        return train_sae(p.factory(4000, batch=200), 16, cfg, progress=False)

    lagging, calibrated = fit("moving_average"), fit("calibrated")
    torch.testing.assert_close(lagging.W_enc, calibrated.W_enc)
    l0 = {
        name: float((s.encode(held_out).values > 0).sum(1).float().mean())
        for name, s in [("moving_average", lagging), ("calibrated", calibrated)]
    }
    assert abs(l0["calibrated"] - 4) < 0.5 < abs(l0["moving_average"] - 4), l0  # 3.92 and 2.04 here
    assert calibrated.build_info["batch_topk_threshold"] == "calibrated"
    assert calibrated.build_info["threshold"] == pytest.approx(float(calibrated.threshold[0]))
    with pytest.raises(ValueError, match="batch_topk_threshold='calibrated' needs batch_topk: true"):
        SAEConfig(n_features=64, k=4, batch_topk_threshold="calibrated")
    with pytest.raises(ValueError, match="moving_average"):
        SAEConfig(n_features=64, k=4, batch_topk=True, batch_topk_threshold="ema")
