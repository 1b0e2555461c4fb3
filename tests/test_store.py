"""The zarr activation store: round trips, chunk-shuffled batches, merging, corruption."""

import json
import shutil

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffdict.store import ActivationStore, ActivationWriter, StoreError, merge_stores

D = 8
ATTRS = {"site": {"name": "double1_img"}, "grid": [4, 4], "split": "test"}


def write(path, n, chunk_rows=16, sizes=None, seed=0, dtype="float16", offset=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, D)).astype(np.float32)
    with ActivationWriter(path, D, ATTRS, dtype=dtype, chunk_rows=chunk_rows) as w:
        i = 0
        for k in sizes or [n]:
            w.append(torch.from_numpy(x[i : i + k]), prompt_id=np.arange(i, i + k) + offset, step=1, token=np.arange(k))
            i += k
    return x


def test_round_trip_and_attrs(tmp_path):
    p = tmp_path / "a.zarr"
    x = write(p, 50, sizes=[3, 17, 0, 30])
    s = ActivationStore.open(p)
    assert len(s) == 50 and s.d_model == D and s.chunk_rows == 16
    assert s.attrs["site"] == ATTRS["site"] and s.attrs["grid"] == [4, 4] and s.attrs["dtype"] == "float16"
    expect = torch.from_numpy(x).half().float()
    assert torch.equal(s.read(slice(None)), expect)
    idx = np.array([40, 2, 17, 2])
    assert torch.equal(s.read(idx), expect[idx])
    m = s.meta()
    assert m.prompt_id.tolist() == list(range(50)) and (m.step == 1).all()
    assert m.token.tolist()[:3] == [0, 1, 2] and m.token.tolist()[3:20] == list(range(17))
    assert s.x.dtype == np.float16 and s.group["step"].dtype == np.int16 and s.group["token"].dtype == np.int32


def test_bfloat16_is_bit_exact(tmp_path):
    p = tmp_path / "b.zarr"
    x = np.random.default_rng(0).standard_normal((20, D)).astype(np.float32) * 1e5  # beyond float16
    with ActivationWriter(p, D, ATTRS, dtype="bfloat16") as w:
        w.append(x, prompt_id=0, step=0, token=np.arange(20))
    s = ActivationStore.open(p)
    assert s.x.dtype == np.uint16 and s.attrs["dtype"] == "bfloat16"
    assert torch.equal(s.read(slice(None)), torch.from_numpy(x).bfloat16().float())


def test_float16_overflow_names_site_and_row(tmp_path):
    x = np.zeros((10, D), np.float32)
    x[7, 3] = 7e4
    with pytest.raises(OverflowError, match=r"double1_img.*row 12 .*bfloat16"):
        with ActivationWriter(tmp_path / "o.zarr", D, ATTRS) as w:
            w.append(np.zeros((5, D)), prompt_id=0, step=0, token=np.arange(5))
            w.append(x, prompt_id=0, step=0, token=np.arange(10))
    assert not (tmp_path / "o.zarr").exists()  # atomic: nothing left behind
    assert list(tmp_path.iterdir()) == []


def test_wrong_width_rejected(tmp_path):
    with pytest.raises(ValueError, match=r"expected \[n, 8\]"):
        with ActivationWriter(tmp_path / "w.zarr", D, ATTRS) as w:
            w.append(np.zeros((2, 3)), prompt_id=0, step=0, token=0)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 90), batch=st.integers(1, 40), buffer_chunks=st.integers(1, 4), seed=st.integers(0, 9))
def test_batches_visit_every_row_once(tmp_path_factory, n, batch, buffer_chunks, seed):
    p = tmp_path_factory.mktemp("s") / "s.zarr"
    x = write(p, n, chunk_rows=8)
    s = ActivationStore.open(p)
    out = list(s.batches(batch, shuffle=True, seed=seed, buffer_chunks=buffer_chunks, with_meta=True))
    assert all(len(b[0]) == batch for b in out[:-1]) and 0 < len(out[-1][0]) <= batch
    ids = torch.cat([m["prompt_id"] for _, m in out])
    assert sorted(ids.tolist()) == list(range(n))
    xs = torch.cat([b for b, _ in out])
    assert torch.equal(xs, torch.from_numpy(x).half().float()[ids])  # rows stay with their metadata


def test_batches_seeded_and_shuffled(tmp_path):
    p = tmp_path / "s.zarr"
    write(p, 200, chunk_rows=16)
    s = ActivationStore.open(p)

    def ids(**kw):
        return torch.cat([m["prompt_id"] for _, m in s.batches(32, with_meta=True, **kw)]).tolist()

    assert ids(seed=1) == ids(seed=1)
    assert ids(seed=1) != ids(seed=2)
    assert ids(shuffle=False) == list(range(200))
    first = ids(seed=1, buffer_chunks=2)[:32]
    assert len({i // 16 for i in first}) <= 2  # a batch comes from the chunks in the buffer only
    assert sum(len(b) for b in s.batches(32, drop_last=True)) == 192


def test_merge_streams_parts_in_order(tmp_path):
    xa = write(tmp_path / "a.zarr", 37, chunk_rows=16, seed=1)
    xb = write(tmp_path / "b.zarr", 20, chunk_rows=16, seed=2, offset=100)
    n = merge_stores([tmp_path / "a.zarr", tmp_path / "b.zarr"], tmp_path / "m.zarr")
    m = ActivationStore.open(tmp_path / "m.zarr")
    assert n == len(m) == 57 and m.attrs["site"] == ATTRS["site"] and m.attrs["parts"] == ["a.zarr", "b.zarr"]
    assert torch.equal(m.read(slice(None)), torch.from_numpy(np.concatenate([xa, xb])).half().float())
    assert m.meta().prompt_id.tolist() == list(range(37)) + list(range(100, 120))


def test_merge_rejects_mismatched_parts(tmp_path):
    write(tmp_path / "a.zarr", 5)
    with ActivationWriter(tmp_path / "b.zarr", D, {**ATTRS, "site": {"name": "other"}}) as w:
        w.append(np.zeros((1, D)), prompt_id=0, step=0, token=0)
    with pytest.raises(StoreError, match="site"):
        merge_stores([tmp_path / "a.zarr", tmp_path / "b.zarr"], tmp_path / "m.zarr")


def test_empty_store(tmp_path):
    with ActivationWriter(tmp_path / "e.zarr", D, ATTRS):
        pass
    s = ActivationStore.open(tmp_path / "e.zarr")
    assert len(s) == 0 and list(s.batches(4)) == []


@pytest.fixture
def store(tmp_path):
    p = tmp_path / "c.zarr"
    write(p, 40, chunk_rows=16)
    return p


def test_not_a_store(tmp_path):
    with pytest.raises(StoreError, match="nope.zarr.*no zarr.json"):
        ActivationStore.open(tmp_path / "nope.zarr")


def test_missing_array(store):
    shutil.rmtree(store / "token")
    with pytest.raises(StoreError, match=r"c.zarr: missing arrays \['token'\]"):
        ActivationStore.open(store)


def test_missing_chunk_is_truncation(store):
    (store / "x" / "c" / "1" / "0").unlink()
    with pytest.raises(StoreError, match="'x' has 2 of 3 chunks.*truncated"):
        ActivationStore.open(store)


def test_row_count_mismatch(store):
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"]["n_rows"] = 41
    (store / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="row count mismatch: n_rows attribute 41"):
        ActivationStore.open(store)


def test_unclosed_store(store):
    meta = json.loads((store / "zarr.json").read_text())
    del meta["attributes"]["n_rows"]
    (store / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="not closed properly"):
        ActivationStore.open(store)


def test_cut_chunk_file_fails_on_read(store):
    f = store / "x" / "c" / "1" / "0"
    f.write_bytes(f.read_bytes()[:100])
    s = ActivationStore.open(store)
    with pytest.raises(StoreError, match="c.zarr: cannot read rows of 'x'"):
        s.read(slice(0, 40))


def test_prefetch_same_batches_and_early_stop(tmp_path):
    p = tmp_path / "s.zarr"
    write(p, 100, chunk_rows=8)
    s = ActivationStore.open(p)
    a = list(s.batches(16, seed=3, buffer_chunks=2, prefetch=True))
    b = list(s.batches(16, seed=3, buffer_chunks=2, prefetch=False))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    it = s.batches(16, seed=3, buffer_chunks=2)
    next(it)
    it.close()  # stops the reader thread without draining the store
