"""ITDA and the pursuits: non-negative codes, monotone residuals, planted recovery, provenance."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from diffdict.dictionaries.itda import ITDA, ITDAConfig, build_itda
from diffdict.dictionaries.pursuit import gradient_pursuit, matching_pursuit
from diffdict.dictionaries.synthetic import planted


def _recon(coef, index, atoms):
    return torch.nn.functional.embedding_bag(index, atoms, per_sample_weights=coef, mode="sum")


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 60),
    d=st.integers(1, 12),
    k=st.integers(1, 10),
    seed=st.integers(0, 10_000),
    nonneg=st.booleans(),
    mp=st.booleans(),
)
def test_pursuit_nonnegative_and_residual_never_grows(n, d, k, seed, nonneg, mp):
    g = torch.Generator().manual_seed(seed)
    atoms = torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    x = torch.randn(40, d, generator=g, dtype=torch.float64) * 3
    fn = matching_pursuit if mp else gradient_pursuit
    prev = x.norm(dim=1)
    for kk in range(1, k + 1):  # greedy: the first kk steps of a run of k are a run of kk
        coef, index = fn(x, atoms, kk, nonneg)
        assert coef.shape == (40, min(kk, n))
        if nonneg:
            assert (coef >= 0).all()
        assert (index.sort(1).values.diff(1) != 0).all()  # each atom at most once per token
        res = (x - _recon(coef, index, atoms)).norm(dim=1)
        assert (res <= prev + 1e-9).all()
        prev = res


@pytest.mark.parametrize("mp", [False, True])
@pytest.mark.parametrize("nonneg", [False, True])
@pytest.mark.parametrize("stop_cos", [None, 0.8])
def test_atom_space_engine_gives_the_residual_engines_codes(mp, nonneg, stop_cos):
    g = torch.Generator().manual_seed(3)
    atoms = torch.nn.functional.normalize(torch.randn(300, 40, generator=g, dtype=torch.float64), dim=1)
    x = torch.relu(torch.randn(200, 300, generator=g, dtype=torch.float64) - 2) @ atoms
    fn = matching_pursuit if mp else gradient_pursuit
    c1, i1 = fn(x, atoms, 12, nonneg, stop_cos)
    c2, i2 = fn(x, atoms, 12, nonneg, stop_cos, gram=atoms @ atoms.T)
    material = c1.abs() > 1e-9  # a token reconstructed exactly picks noise afterwards
    assert torch.equal(i1[material], i2[material])
    torch.testing.assert_close(c2, c1)
    if stop_cos is not None:  # some tokens stopped early, so the test covers the active-set path
        assert (c1 == 0).any(1).any()


def test_gradient_pursuit_beats_matching_pursuit_and_solves_orthogonal_case():
    atoms = torch.eye(6, dtype=torch.float64)
    x = torch.tensor([[3.0, 0, 2, 0, 0, 1]], dtype=torch.float64)
    coef, index = gradient_pursuit(x, atoms, 3)
    torch.testing.assert_close(_recon(coef, index, atoms), x)
    g = torch.Generator().manual_seed(0)
    atoms = torch.nn.functional.normalize(torch.randn(50, 10, generator=g), dim=1)
    x = torch.relu(torch.randn(300, 50, generator=g)) @ atoms
    err = lambda c, i: (x - _recon(c, i, atoms)).pow(2).sum()
    assert err(*gradient_pursuit(x, atoms, 5)) < err(*matching_pursuit(x, atoms, 5))


def test_recovers_planted_atoms_with_provenance():
    p = planted(d=64, n_atoms=128, k=4, k_min=1, seed=0)
    f = p.factory(20000, batch=512)
    itda = build_itda(f, 64, ITDAConfig(k=4, cos_threshold=0.9, max_atoms=1000, batch_size=256), progress=False)
    cos = (itda.directions @ p.atoms.T).max(0).values
    assert (cos >= 0.9).float().mean() >= 0.6, cos
    # atoms are real activations: provenance points at the rows they came from
    data = p.sample(20000, p.seed + 1)
    rows = itda.atom_row
    assert (rows >= 0).all() and len(set(rows.tolist())) == len(rows)
    expect = torch.nn.functional.normalize((data[rows] - itda.mean) / itda.scale, dim=1)
    torch.testing.assert_close(itda.atoms, expect, rtol=1e-4, atol=1e-5)
    x = p.sample(1000, 5)
    codes = itda.encode(x)
    assert (codes.values >= 0).all() and codes.indices.shape == (1000, 4)


def test_cap_threshold_and_one_pass():
    p = planted(d=16, n_atoms=64, k=3, seed=1)
    f = p.factory(3000, batch=300)
    small = build_itda(f, 16, ITDAConfig(k=3, cos_threshold=0.99, max_atoms=50, batch_size=100), progress=False)
    assert small.n_features == 50
    loose = build_itda(f, 16, ITDAConfig(k=3, cos_threshold=0.3, max_atoms=50, batch_size=100), progress=False)
    assert loose.n_features < 50
    x = p.sample(500, 9)
    xn = (x - loose.mean) / loose.scale
    c = loose.encode(x)
    xh = (loose.decode(c) - loose.mean) / loose.scale
    assert torch.nn.functional.cosine_similarity(xn, xh).mean() > 0.3


def test_config_validation():
    with pytest.raises(ValueError, match="pursuit"):
        ITDAConfig(pursuit="omp")
    with pytest.raises(ValueError, match="pursuit"):
        ITDA(4, 2, 1, pursuit="omp")
    with pytest.raises(ValueError, match="cos_threshold"):
        ITDAConfig(cos_threshold=0.0)


def test_early_stop_keeps_codes_good_enough_and_padding_zero():
    g = torch.Generator().manual_seed(2)
    atoms = torch.nn.functional.normalize(torch.randn(80, 16, generator=g), dim=1)
    x = torch.relu(torch.randn(200, 80, generator=g)) ** 3 @ atoms
    full_c, full_i = gradient_pursuit(x, atoms, 8)
    c, i = gradient_pursuit(x, atoms, 8, stop_cos=0.9)
    cos = torch.nn.functional.cosine_similarity(x, _recon(c, i, atoms), dim=1)
    stopped = (c == 0).any(1)
    assert stopped.any() and (cos[stopped] >= 0.9 - 1e-6).all()
    assert (c >= 0).all() and ((c != 0).sum(1) <= (full_c != 0).sum(1)).all()
    torch.testing.assert_close(c[~stopped], full_c[~stopped])


def test_build_gives_the_same_atoms_with_and_without_the_gram_matrix(monkeypatch):
    import diffdict.dictionaries.itda as itda_mod

    p = planted(d=32, n_atoms=64, k=3, k_min=1, seed=1)
    built = {}
    for use in (False, True):
        monkeypatch.setattr(itda_mod, "use_gram", lambda n, d, use=use: use)
        cfg = ITDAConfig(k=3, cos_threshold=0.9, max_atoms=300, batch_size=128, init_tokens=1024)
        built[use] = build_itda(p.factory(4096, batch=512), 32, cfg, progress=False)
    assert built[True].n_features == built[False].n_features > 64
    torch.testing.assert_close(built[True].atoms, built[False].atoms)
    assert torch.equal(built[True].atom_row, built[False].atom_row)
    x = p.sample(500, 7)
    a, b = built[True].encode(x), built[False].encode(x)  # encode uses the cached Gram matrix when forced
    torch.testing.assert_close(built[True].decode(a), built[False].decode(b), rtol=1e-4, atol=1e-4)
