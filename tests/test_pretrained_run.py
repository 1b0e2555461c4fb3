"""Bring your own SAE: one trained by EleutherAI sparsify's own code on the toy site's
activations, declared as `{kind: pretrained, format: sparsify, path: ...}`, runs through the whole
DAG beside the project's dictionaries (FVU, interpretability, steering, concept recovery, browser),
and `snakemake exports` writes every trained SAE in the peer formats that hold it, loadable by the
peers. A BatchTopK SAE (`batch_topk: true`: codes of varying width per token) runs beside them too.

The minimal config (one site, an SAE and random directions); the activations are captured first
so that the sparsify SAE can be trained on the same site's training split."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from peers import require_peer

from workflow_utils import minimal_config, snakemake

pytestmark = pytest.mark.slow
sparsify = require_peer("sparsify")
sae_lens = require_peer("sae_lens")

SITE = "double1_img"
ACT = f"results/toy/activations/{SITE}"


def train_sparsify(store_path, out_dir, steps=300, batch=512, width=128, k=8):
    """sparsify's SparseCoder trained the way its Trainer does (FVU + AuxK loss, unit-norm decoder
    rows, the gradient parallel to them removed), on the site's stored training activations."""
    from sparsify import SparseCoder, SparseCoderConfig

    from diffdict.store import ActivationStore

    store = ActivationStore.open(store_path)
    torch.manual_seed(0)
    sae = SparseCoder(store.d_model, SparseCoderConfig(num_latents=width, k=k))
    opt = torch.optim.Adam(sae.parameters(), lr=2e-3)
    since = torch.zeros(width, dtype=torch.long)
    step = 0
    while step < steps:
        for x in store.batches(batch, shuffle=True, seed=step):
            x = x.float()
            if step == 0:
                sae.b_dec.data = x.mean(0)
            sae.set_decoder_norm_to_unit_norm()
            out = sae(x, dead_mask=since > 20 * batch)
            (out.fvu + out.auxk_loss / 32).backward()
            sae.remove_gradient_parallel_to_decoder_directions()
            opt.step()
            opt.zero_grad()
            with torch.no_grad():
                since += len(x)
                since[out.latent_indices.flatten()] = 0
            step += 1
            if step == steps:
                break
    sae.set_decoder_norm_to_unit_norm()
    sae.save_to_disk(out_dir)
    return sae


@pytest.fixture(scope="module")
def run(tmp_path_factory, cli_env):
    workdir = tmp_path_factory.mktemp("pretrained")
    cfg = minimal_config()
    snakemake(workdir, cfg, f"{ACT}/train.zarr", f"{ACT}/test.zarr", env=cli_env)
    sae = train_sparsify(workdir / ACT / "train.zarr", workdir / "theirs")
    cfg["dictionaries"]["theirs"] = {"kind": "pretrained", "format": "sparsify", "path": str(workdir / "theirs")}
    cfg["dictionaries"]["btk"] = {**cfg["dictionaries"]["sae"], "batch_topk": True}
    snakemake(workdir, cfg, "results/figures/", "exports", env=cli_env)
    return workdir, sae


def _table(workdir, name):
    return pd.read_csv(workdir / "results/toy/tables" / name)


def test_the_pipeline_measures_the_sparsify_sae_as_sparsify_does(run):
    from diffdict.store import ActivationStore

    workdir, sae = run
    rec = _table(workdir, "reconstruction.csv").set_index("dict")
    assert rec.loc["theirs", "kind"] == "pretrained" and set(rec.index) == {"sae", "random", "theirs", "btk"}
    x = torch.cat([b.float() for b in ActivationStore.open(workdir / ACT / "test.zarr").batches(4096, shuffle=False)])
    with torch.no_grad():
        out = sae(x)  # sparsify's own forward: FVU against the batch's total variance
    assert rec.loc["theirs", "fvu"] == pytest.approx(float(out.fvu), rel=1e-4)
    assert rec.loc["theirs", "fvu"] < rec.loc["random", "fvu"]


def test_every_stage_has_its_rows_beside_the_projects_dictionaries(run):
    workdir, _ = run
    for table in ("interp_scores.csv", "steering.csv", "concepts.csv", "splice.csv"):
        got = _table(workdir, table)
        assert {"sae", "random", "theirs", "btk"} <= set(got["dict"]), table
        assert set(got.loc[got["dict"] == "theirs", "kind"]) == {"pretrained"}, table
    assert (workdir / "results/report/toy" / SITE / "theirs" / "index.html").exists()
    index = (workdir / "results/report/index.html").read_text()
    assert f"toy/{SITE}/theirs/index.html" in index


def test_exports_load_in_both_peers_with_the_runs_numbers(run):
    from sae_lens import SAE
    from sparsify import SparseCoder

    from diffdict.dictionaries import load_dictionary

    workdir, _ = run
    exports = workdir / "results/toy/exports"
    assert sorted(p.relative_to(exports).as_posix() for p in exports.glob("*/*/*")) == [
        f"saelens/{SITE}/btk",
        f"saelens/{SITE}/sae",
        f"sparsify/{SITE}/sae",
    ]  # TopK SAEs only (random directions stay diffdict's); a BatchTopK SAE's threshold has no sparsify form
    btk = load_dictionary(workdir / f"results/toy/dictionaries/{SITE}/btk/dictionary.safetensors")
    assert SAE.load_from_disk(exports / f"saelens/{SITE}/btk").cfg.architecture() == "jumprelu"
    assert btk.batch_topk and float(btk.threshold.min()) > 0
    ours = load_dictionary(workdir / f"results/toy/dictionaries/{SITE}/sae/dictionary.safetensors")
    x = torch.randn(256, ours.d_model, generator=torch.Generator().manual_seed(0)) * 4
    want = ours.decode(ours.encode(x))
    lens = SAE.load_from_disk(exports / f"saelens/{SITE}/sae")
    assert lens.cfg.metadata.model_name == "toy" and lens.cfg.metadata.hook_name == "transformer_blocks.1.out.img"
    sp = SparseCoder.load_from_disk(exports / f"sparsify/{SITE}/sae")
    with torch.no_grad():
        enc = sp.encode(x)
        for got in (lens(x), sp.decode(enc.top_acts, enc.top_indices)):
            assert float((got - want).norm() / want.norm()) <= 1e-5
    assert json.loads((exports / f"sparsify/{SITE}/sae/cfg.json").read_text())["diffdict"]["diffdict_site"] == SITE
