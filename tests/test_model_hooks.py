"""Hook sites, step tracking, steering and splicing on a tiny random FluxTransformer2DModel."""

import diffusers
import pytest
import torch

from diffdict.model import (
    SiteError,
    check_site,
    mean_token_norm,
    record_site,
    site_hook,
    splice,
    steer,
)
from diffdict.model.tiny import tiny_transformer
from diffdict.sites import Site

B, L_TXT, GRID = 2, 5, (4, 6)
L_IMG = GRID[0] * GRID[1]


@pytest.fixture(scope="module")
def tr():
    return tiny_transformer(0)


def inputs(t=0.5, seed=0):
    from diffusers import FluxPipeline

    g = torch.Generator().manual_seed(seed)
    return dict(
        hidden_states=torch.randn(B, L_IMG, 16, generator=g),
        encoder_hidden_states=torch.randn(B, L_TXT, 32, generator=g),
        pooled_projections=torch.randn(B, 16, generator=g),
        timestep=torch.full((B,), t),
        img_ids=FluxPipeline._prepare_latent_image_ids(None, *GRID, "cpu", torch.float32),
        txt_ids=torch.zeros(L_TXT, 3),
        return_dict=False,
    )


def run(tr, **kw):
    with torch.no_grad():
        return tr(**inputs(**kw))[0]


def site(block="double", index=1, stream="img", place="resid"):
    return Site(name=f"{block}{index}_{stream}_{place}", block=block, index=index, stream=stream, place=place)


@pytest.mark.parametrize("block", ["double", "single"])
@pytest.mark.parametrize("stream", ["img", "txt"])
@pytest.mark.parametrize("place", ["resid", "mlp"])
def test_hook_shapes_pinned_for_installed_diffusers(tr, block, stream, place):
    # hook layout checked against diffusers 0.42.1; a new version must re-verify it
    assert diffusers.__version__.startswith("0.42"), diffusers.__version__
    d = 16
    with record_site(tr, site(block, 1, stream, place)) as rec:
        run(tr)
    assert len(rec) == 1
    step, x = rec[0]
    assert step == 0
    assert x.shape == (B, L_IMG if stream == "img" else L_TXT, 4 * d if place == "mlp" else d)


def test_blocks_return_text_first(tr):
    # the image stream of the last single block is what the output head (norm_out) receives
    got = {}
    h = tr.norm_out.register_forward_pre_hook(lambda m, a: got.update(x=a[0].detach().clone()))
    try:
        with record_site(tr, site("single", 1, "img")) as img, record_site(tr, site("single", 1, "txt")) as txt:
            run(tr)
    finally:
        h.remove()
    assert torch.equal(img[0][1], got["x"])
    assert txt[0][1].shape[1] == L_TXT


def test_single_mlp_splits_text_first(tr):
    blk = tr.single_transformer_blocks[0]
    seen = {}
    h = blk.act_mlp.register_forward_hook(lambda m, a, o: seen.update(all=o.detach().clone()))
    try:
        with (
            record_site(tr, site("single", 0, "txt", "mlp")) as t,
            record_site(tr, site("single", 0, "img", "mlp")) as i,
        ):
            run(tr)
    finally:
        h.remove()
    assert torch.equal(torch.cat([t[0][1], i[0][1]], 1), seen["all"])


def test_missing_block_names_valid_range(tr):
    with pytest.raises(SiteError, match=r"valid: 0\.\.1"):
        check_site(tr, site("double", 5))
    with pytest.raises(SiteError, match="stream 'audio'"):
        check_site(tr, Site("x", "single", 0, stream="audio"))


def test_step_tracking_follows_timesteps(tr):
    s = site()
    with record_site(tr, s) as rec:
        for t in (1.0, 1.0, 0.75, 0.5, 1.0, 0.5):  # repeated t (CFG pass) and a new trajectory
            run(tr, t=t)
    assert [r[0] for r in rec] == [0, 0, 1, 2, 0, 1]


def test_steer_adds_vector_on_chosen_steps_with_border(tr):
    s = site("double", 0)
    direction = torch.randn(16)
    with record_site(tr, s) as base:
        for t in (1.0, 0.5):
            run(tr, t=t)
    with steer(tr, s, direction, strength=2.0, steps={1}, border=1) as state, record_site(tr, s) as rec:
        for t in (1.0, 0.5):
            run(tr, t=t)
    assert state.calls == 2
    assert torch.equal(rec[0][1], base[0][1])  # step 0 not steered
    diff = (rec[1][1] - base[1][1]).reshape(B, *GRID, 16)
    inner = diff[:, 1:-1, 1:-1]
    torch.testing.assert_close(inner, (2.0 * direction).expand_as(inner), rtol=0, atol=1e-5)
    edge = torch.ones(GRID, dtype=torch.bool)
    edge[1:-1, 1:-1] = False
    assert diff[:, edge].abs().max() == 0


def test_steer_changes_output_and_is_removed_after(tr):
    base = run(tr)
    with steer(tr, site("double", 0), torch.ones(16), strength=5.0):
        steered = run(tr)
    assert not torch.allclose(steered, base)
    assert torch.equal(run(tr), base)


def test_steer_rejects_wrong_width(tr):
    with pytest.raises(ValueError, match="16"):
        with steer(tr, site(), torch.ones(7), 1.0):
            run(tr)


def test_splice_identity_is_exact_and_zero_replaces(tr):
    base = run(tr)
    with splice(tr, site("single", 0), lambda x: x):
        assert torch.equal(run(tr), base)
    s = site("double", 1, "txt", "mlp")
    mask = torch.zeros(B, L_TXT, dtype=torch.bool)
    mask[:, :2] = True
    with splice(tr, s, torch.zeros_like, token_mask=mask), record_site(tr, s) as rec:
        out = run(tr)
    x = rec[0][1]
    assert x[mask].abs().max() == 0 and x[~mask].abs().min() > 0
    assert not torch.allclose(out, base)


def test_stop_forward_runs_nothing_after_site(tr):
    from diffdict.model import StopForward

    calls = []
    hs = [b.register_forward_hook(lambda *a, i=i: calls.append(i)) for i, b in enumerate(tr.single_transformer_blocks)]
    try:
        with site_hook(tr, site("double", 1), lambda x, st: None, stop=True):
            with pytest.raises(StopForward):
                run(tr)
    finally:
        for h in hs:
            h.remove()
    assert calls == []


def test_mean_token_norm():
    assert mean_token_norm(torch.tensor([[3.0, 4.0], [0.0, 1.0]])) == pytest.approx(3.0)
