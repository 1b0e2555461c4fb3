"""Synthetic activations with a planted sparse dictionary, for tests and benchmarks.

    x = mean + sum_{i in S(x)} a_i * atom_i + noise

with power-law atom frequencies (a few common features, a long tail), non-negative
exponential magnitudes, a large non-zero mean and a handful of high-variance "massive"
dimensions, as seen in diffusion-transformer residual streams.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Planted:
    atoms: torch.Tensor  # [n_atoms, d] unit norm
    mean: torch.Tensor  # [d]
    freq: torch.Tensor  # [n_atoms] firing probabilities
    k: int
    noise: float
    massive: torch.Tensor  # [d] per-dimension gain
    seed: int
    k_min: int

    def sample(self, n: int, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        n_atoms, d = self.atoms.shape
        # each token draws k atoms without replacement, weighted by frequency
        idx = torch.multinomial(self.freq.expand(n, -1), self.k, replacement=False, generator=g)
        mag = torch.empty(n, self.k).exponential_(1.0, generator=g) + 0.5
        l0 = torch.randint(self.k_min, self.k + 1, (n, 1), generator=g)  # active atoms per token
        mag = mag * (torch.arange(self.k) < l0)
        x = torch.nn.functional.embedding_bag(idx, self.atoms, per_sample_weights=mag, mode="sum")
        x = x + self.noise * torch.randn(n, d, generator=g) / d**0.5
        return self.mean + x * self.massive

    def factory(self, n_tokens: int, batch: int = 1024, rows: bool = True):
        """A batches factory over a fixed split of ``n_tokens``, reshuffled per epoch."""
        data = self.sample(n_tokens, self.seed + 1)

        def batches(epoch: int):
            perm = torch.randperm(n_tokens, generator=torch.Generator().manual_seed(1000 + epoch))
            for a in range(0, n_tokens, batch):
                r = perm[a : a + batch]
                yield {"x": data[r], "row": r} if rows else data[r]

        return batches


# The atoms' generator is salted: unsalted, `planted(seed=s)` drew its atoms as the first
# torch.randn of Generator(s), exactly as a TopK SAE or random directions with seed s draw their
# initial directions (same d, first rows), so a dictionary with the data's seed started at the
# answer. Benchmarks and tests measured that head start as recovery until 2026-12-05.
ATOM_SALT = 0x9E3779B97F4A7C15


def planted(
    d: int = 64,
    n_atoms: int = 256,
    k: int = 4,
    noise: float = 0.05,
    mean_norm: float = 10.0,
    n_massive: int = 0,
    alpha: float = 0.5,
    seed: int = 0,
    k_min: int | None = None,
) -> Planted:
    """``k_min``: tokens use between k_min and k atoms (default: exactly k)."""
    g = torch.Generator().manual_seed(seed + ATOM_SALT)
    atoms = torch.randn(n_atoms, d, generator=g)
    atoms = atoms / atoms.norm(dim=1, keepdim=True)
    mean = torch.randn(d, generator=g)
    mean = mean_norm * mean / mean.norm()
    freq = (torch.arange(n_atoms) + 1.0) ** -alpha
    massive = torch.ones(d)
    massive[torch.randperm(d, generator=g)[:n_massive]] = 20.0
    return Planted(atoms, mean, freq / freq.sum(), k, noise, massive, seed, k if k_min is None else k_min)
