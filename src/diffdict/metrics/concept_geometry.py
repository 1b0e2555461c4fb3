"""How a site encodes a concept's values, and whether a dictionary's directions lie there.

One feature can tell red from blue only if the colours lie far apart along some direction
compared with the spread inside each colour. Concept recovery (`metrics.concepts`) asks whether
a dictionary has such a feature; these measures, on labelled tokens, say whether one can exist:

* `explained_variance`: the share of the activations' variance a least-squares fit on a design
  matrix explains (R²). With one-hot classes it is the between-class share; with nuisance
  factors (the token's grid position, its own noisy input latent) it says what else the
  reconstruction objective sees.
* `class_geometry`: where the class means lie — the PCA shares of the centred means, the number
  of dimensions that hold 95 % of the between-class variance, and the separation (mean
  distance between class means over the within-class RMS spread).
* `subspace_share`: per unit direction, the share of its squared norm in a subspace (for
  example the plane of the colour means); a random direction in d dimensions expects rank / d.
* `fisher_ratio`, `discriminant_direction`, `variance_share`: how well one direction separates
  the classes, the direction that separates them best, and how much of the variance lies along
  a direction — a reconstruction objective spends its latents where the variance is, a probe
  uses the discriminant, and the two need not coincide.
"""

from __future__ import annotations

import numpy as np


def explained_variance(x: np.ndarray, design: np.ndarray) -> float:
    """R² of the least-squares fit of x [N, d] on design [N, p] plus an intercept, over all
    of x's dimensions together (1 - residual sum of squares / total sum of squares)."""
    x = np.asarray(x, np.float64)
    design = np.asarray(design, np.float64).reshape(len(x), -1)
    a = np.c_[design, np.ones(len(x))]
    coef, *_ = np.linalg.lstsq(a, x, rcond=None)
    resid = x - a @ coef
    return float(1 - (resid**2).sum() / ((x - x.mean(0)) ** 2).sum())


def one_hot(values) -> np.ndarray:
    """[N] labels of any type -> [N, n_distinct] float indicator matrix."""
    _, inverse = np.unique(np.asarray(values), return_inverse=True)
    return np.eye(inverse.max() + 1)[inverse]


def class_means(x: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(classes, [n_classes, d] means of x per class, centred on the mean of the class means)."""
    x = np.asarray(x, np.float64)
    classes = np.unique(labels)
    means = np.stack([x[labels == c].mean(0) for c in classes])
    return classes, means - means.mean(0)


def class_geometry(x: np.ndarray, labels: np.ndarray) -> dict:
    """Where the class means of x [N, d] (classes: `labels` [N]) lie.

    `pca_shares`: between-class variance per principal axis of the centred means (sums to 1);
    `dims_95`: axes needed for 95 % of it; `separation`: mean pairwise distance between class
    means over the RMS distance of a token from its class mean (both in x's units: 1 means the
    classes are as far apart as a typical token is from its own class's centre)."""
    x = np.asarray(x, np.float64)
    labels = np.asarray(labels)
    classes, means = class_means(x, labels)
    if len(classes) < 2:
        raise ValueError(f"class_geometry needs at least two classes, got {len(classes)}")
    sv2 = np.linalg.svd(means, compute_uv=False) ** 2
    shares = sv2 / sv2.sum()
    within = np.concatenate([x[labels == c] - x[labels == c].mean(0) for c in classes])
    rms = np.sqrt((within**2).sum(1).mean())
    i, j = np.triu_indices(len(classes), 1)
    dist = np.linalg.norm(means[i] - means[j], axis=1).mean()
    return {
        "classes": len(classes),
        "pca_shares": shares,
        "dims_95": int(np.searchsorted(np.cumsum(shares), 0.95) + 1),
        "separation": float(dist / rms),
    }


def class_plane(x: np.ndarray, labels: np.ndarray, rank: int = 2) -> np.ndarray:
    """[rank, d] orthonormal basis of the top `rank` principal axes of the centred class means."""
    _, means = class_means(x, np.asarray(labels))
    return np.linalg.svd(means, full_matrices=False)[2][:rank]


def subspace_share(directions: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """[n] share of each direction's squared norm (rows of `directions` [n, d]) inside the
    span of `basis` [r, d] (orthonormalised here): 1 inside, 0 orthogonal, r/d expected at random."""
    q, _ = np.linalg.qr(np.asarray(basis, np.float64).T)  # [d, r]
    d = np.asarray(directions, np.float64)
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    return ((d @ q) ** 2).sum(1)


def fisher_ratio(x: np.ndarray, labels: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """[n] between-class over mean within-class variance of x [N, d] projected on each row of
    `directions` [n, d]: how well one direction alone tells the classes apart (scale-free)."""
    labels = np.asarray(labels)
    z = np.asarray(x, np.float64) @ np.asarray(directions, np.float64).T  # [N, n]
    classes = np.unique(labels)
    means = np.stack([z[labels == c].mean(0) for c in classes])
    within = np.stack([z[labels == c].var(0) for c in classes]).mean(0)
    return means.var(0) / within


def discriminant_direction(x: np.ndarray, labels: np.ndarray, ridge: float = 1e-6) -> np.ndarray:
    """[d] unit direction of largest Fisher ratio (multi-class LDA's first axis): the direction a
    linear probe can use, whatever share of the variance it carries."""
    x = np.asarray(x, np.float64)
    labels = np.asarray(labels)
    classes, means = class_means(x, labels)
    within = sum(np.cov(x[labels == c].T, bias=True) for c in classes) / len(classes)
    within = within + ridge * np.trace(within) / len(within) * np.eye(len(within))
    between = means.T @ means / len(classes)
    # symmetric form: whiten with the within-class covariance, then the top eigenvector
    w, v = np.linalg.eigh(within)
    isq = v @ np.diag(w**-0.5) @ v.T
    top = np.linalg.eigh(isq @ between @ isq)[1][:, -1]
    d = isq @ top
    return d / np.linalg.norm(d)


def variance_share(x: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """[n] share of x's total variance along each unit row of `directions` [n, d]."""
    x = np.asarray(x, np.float64)
    d = np.asarray(directions, np.float64)
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    return (x @ d.T).var(0) / x.var(0).sum()
