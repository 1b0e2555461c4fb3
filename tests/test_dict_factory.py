"""The CLI entry point: dispatch, hyperparameter validation, save/load round trips."""

import pytest
import torch

from diffdict.devices import describe
from diffdict.dictionaries import HPARAMS, KINDS, build, load_dictionary, validate_hparams
from diffdict.dictionaries.base import read_metadata
from diffdict.dictionaries.synthetic import planted

P = planted(d=16, n_atoms=32, k=2, seed=0)
SMALL = {
    "topk_sae": {"n_features": 32, "k": 2, "batch_size": 64, "tokens": 640, "checkpoint_every": 5},
    "matryoshka_sae": {"n_features": 32, "k": 2, "batch_size": 64, "tokens": 640, "prefixes": [8, 16]},
    "itda": {"k": 2, "cos_threshold": 0.9, "max_atoms": 40, "batch_size": 64},
    "random": {"n_features": 32, "k": 2, "seed": 3},
    "neurons": {"k": 4},
}


BUILT = [k for k in KINDS if k != "pretrained"]  # pretrained reads a file: tests/test_interop.py
SAVED_AS = {"matryoshka_sae": "topk_sae"}  # trained differently, the same dictionary once trained


def test_kinds_and_hparams_cover_each_other():
    assert set(KINDS) == set(HPARAMS) == set(SMALL) | {"pretrained"}
    for kind in BUILT:
        assert validate_hparams(kind, {**SMALL[kind], "kind": kind}) == []


def test_unknown_kind_and_key_name_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown dictionary kind 'sea'.*topk_sae.*itda.*random.*neurons"):
        build("sea", {}, P.factory(100), 16)
    with pytest.raises(ValueError, match=r"unknown hyperparameter\(s\) \['n_feature'\]; valid: .*'n_features'"):
        build("topk_sae", {"n_feature": 8}, P.factory(100), 16)
    with pytest.raises(ValueError, match="w_out"):
        build("neurons", {"k": 2}, P.factory(100), 16)
    with pytest.raises(ValueError, match=r"unknown input\(s\) \['w_outt'\]; valid: .*'w_out'"):
        build("random", {}, P.factory(100), 16, w_outt=torch.zeros(16, 7))
    with pytest.raises(ValueError, match="place 'mlp'"):
        build("neurons", {"k": 2}, P.factory(100), 16, w_out=torch.zeros(16, 7))


@pytest.mark.parametrize("kind", BUILT)
def test_build_save_load_round_trip(kind, tmp_path):
    w_out = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    d = build(
        kind,
        {"kind": kind, **SMALL[kind]},
        P.factory(2000, batch=250),
        16,
        checkpoint_dir=tmp_path / "ckpt",
        log_path=tmp_path / "log.csv",
        device="cpu",
        site_name="s1",
        w_out=w_out,
        progress=False,
    )
    saved = SAVED_AS.get(kind, kind)
    assert d.kind == saved and d.build_info["site"] == "s1" and (tmp_path / "log.csv").exists()
    d.save(tmp_path / "dictionary.safetensors", extra={"site": "s1", **d.build_info})
    meta = read_metadata(tmp_path / "dictionary.safetensors")
    assert meta["kind"] == saved and meta["extra"]["site"] == "s1"
    assert meta["extra"]["device"] == describe("cpu")  # which CPU built it: its rounding is in the weights
    back = load_dictionary(tmp_path / "dictionary.safetensors")
    x = P.sample(300, 11)
    a, b = d.encode(x), back.encode(x)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.values, b.values)
    assert torch.equal(d.decode(a), back.decode(b))
    assert torch.equal(d.directions, back.directions)
    torch.testing.assert_close(back.directions.norm(dim=1), torch.ones(back.n_features))
    assert a.indices.shape[1] <= SMALL[kind]["k"]


def test_itda_provenance_survives_save(tmp_path):
    def factory(epoch):
        x = P.sample(500, 1)
        for a in range(0, 500, 100):
            r = torch.arange(a, a + 100)
            yield {"x": x[a : a + 100], "row": r + 7, "prompt_id": r // 10, "step": r % 2, "token": r % 16}

    d = build("itda", SMALL["itda"], factory, 16, progress=False)
    d.save(tmp_path / "d.safetensors")
    back = load_dictionary(tmp_path / "d.safetensors")
    prov = back.provenance()
    assert torch.equal(prov["prompt_id"], (prov["row"] - 7) // 10)
    assert torch.equal(prov["token"], (prov["row"] - 7) % 16)


def test_store_style_tuple_items_carry_metadata():
    from diffdict.dictionaries.data import as_batch

    x = torch.zeros(3, 4)
    b = as_batch((x, {"prompt_id": torch.tensor([5, 5, 6]), "row": torch.tensor([10, 11, 12])}))
    assert b.meta["prompt_id"].tolist() == [5, 5, 6] and b.meta["row"].tolist() == [10, 11, 12] and not b.positional
    b = as_batch((x, {"step": torch.tensor([0, 1, 0])}), position=100)
    assert b.meta["row"].tolist() == [100, 101, 102] and b.positional


@pytest.mark.parametrize("kind", ["topk_sae", "random"])
def test_train_on_store_is_the_train_dictionary_job(kind, tmp_path):
    """Store in, dictionary file out, with the site recorded as its config entry (what the
    interop exporters read) and the training log written for trained and built kinds alike."""
    import numpy as np

    from diffdict.dictionaries.factory import train_on_store
    from diffdict.sites import Site
    from diffdict.store import ActivationWriter

    x = P.sample(640, seed=1).numpy()
    with ActivationWriter(tmp_path / "train.zarr", 16, chunk_rows=128) as w:
        w.append(x, prompt_id=np.arange(640) // 10, step=np.zeros(640), token=np.arange(640) % 10)
    site = Site.from_config("d1", {"block": "double", "index": 1, "steps": [0]})
    out = tmp_path / "dictionary.safetensors"
    d = train_on_store(
        {"kind": kind, "replicates": 2, **SMALL[kind]},
        tmp_path / "train.zarr",
        site,
        out,
        log_path=tmp_path / "log.csv",
    )
    meta = read_metadata(out)
    assert meta["kind"] == kind and meta["extra"]["site"] == "d1"
    assert meta["extra"]["site_config"] == site.to_config() and "name" not in meta["extra"]["site_config"]
    loaded = load_dictionary(out).state_dict()
    assert all(torch.equal(v, loaded[k]) for k, v in d.state_dict().items())
    assert (tmp_path / "log.csv").is_file()
