"""Concept geometry: known answers on planted class means."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffdict.metrics.concept_geometry import (
    class_geometry,
    class_plane,
    discriminant_direction,
    explained_variance,
    fisher_ratio,
    one_hot,
    subspace_share,
    variance_share,
)


def circle_classes(n_classes=6, d=10, radius=1.0, sigma=0.1, per_class=2000, seed=0):
    """Class means on a circle in the first two of d dimensions, isotropic noise sigma."""
    rng = np.random.default_rng(seed)
    angle = 2 * np.pi * np.arange(n_classes) / n_classes
    means = np.zeros((n_classes, d))
    means[:, 0], means[:, 1] = radius * np.cos(angle), radius * np.sin(angle)
    labels = np.repeat(np.arange(n_classes), per_class)
    return means[labels] + sigma * rng.standard_normal((len(labels), d)), labels, means


def test_explained_variance_exact_fit_and_independent_noise():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((500, 3))
    assert explained_variance(a @ rng.standard_normal((3, 5)) + 2.0, a) == pytest.approx(1.0)
    assert explained_variance(rng.standard_normal((20_000, 5)), rng.standard_normal((20_000, 3))) < 0.002


def test_one_hot_design_gives_the_between_class_share():
    x, labels, means = circle_classes(sigma=1.0)
    # between: radius^2 = 1 per token; within: sigma^2 * d = 10 -> share 1 / 11
    assert explained_variance(x, one_hot(labels)) == pytest.approx(1 / 11, abs=0.01)
    assert one_hot(np.array(["b", "a", "b"])).tolist() == [[0, 1], [1, 0], [0, 1]]


def test_class_geometry_of_a_circle_in_a_plane():
    x, labels, _ = circle_classes(sigma=0.1)
    g = class_geometry(x, labels)
    assert g["classes"] == 6 and g["dims_95"] == 2
    assert g["pca_shares"][:2] == pytest.approx([0.5, 0.5], abs=0.01)
    # six points on the unit circle: mean pairwise distance (2*(1 + sqrt3) + 2 + ... ) / 15
    i, j = np.triu_indices(6, 1)
    angle = 2 * np.pi * np.arange(6) / 6
    pts = np.c_[np.cos(angle), np.sin(angle)]
    expected = np.linalg.norm(pts[i] - pts[j], axis=1).mean() / (0.1 * np.sqrt(10))
    assert g["separation"] == pytest.approx(expected, rel=0.02)


def test_class_geometry_refuses_one_class():
    with pytest.raises(ValueError, match="two classes"):
        class_geometry(np.zeros((4, 3)), np.zeros(4))


def test_class_plane_and_subspace_share():
    x, labels, _ = circle_classes(sigma=0.05)
    plane = class_plane(x, labels)
    e = np.eye(10)
    share = subspace_share(np.stack([e[0], e[1], e[5], e[0] + e[5]]), plane)
    assert share == pytest.approx([1, 1, 0, 0.5], abs=0.01)


@settings(max_examples=20, deadline=None)
@given(d=st.integers(8, 64), r=st.integers(1, 4), seed=st.integers(0, 1000))
def test_random_directions_share_rank_over_d(d, r, seed):
    rng = np.random.default_rng(seed)
    share = subspace_share(rng.standard_normal((4000, d)), rng.standard_normal((r, d)))
    assert np.all((share >= -1e-12) & (share <= 1 + 1e-12))
    assert share.mean() == pytest.approx(r / d, abs=0.02)


def test_discriminant_direction_ignores_high_variance_nuisance():
    """Classes at +-1 along e0 with spread 0.5; a nuisance of spread 10 along e1 that carries
    no class information. The discriminant is e0 with Fisher ratio 1 / 0.25 = 4; e1 holds
    almost all the variance and separates nothing."""
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20_000)
    x = np.zeros((len(labels), 4))
    x[:, 0] = np.where(labels == 1, 1.0, -1.0) + 0.5 * rng.standard_normal(len(labels))
    x[:, 1] = 10.0 * rng.standard_normal(len(labels))
    x[:, 2:] = 0.5 * rng.standard_normal((len(labels), 2))
    d = discriminant_direction(x, labels)
    assert abs(d[0]) == pytest.approx(1.0, abs=1e-3)
    e = np.eye(4)
    assert fisher_ratio(x, labels, np.stack([d, e[1]])) == pytest.approx([4.0, 0.0], abs=0.1)
    share = variance_share(x, np.stack([e[0], e[1]]))
    total = 1.25 + 100 + 0.5
    assert share == pytest.approx([1.25 / total, 100 / total], rel=0.05)
