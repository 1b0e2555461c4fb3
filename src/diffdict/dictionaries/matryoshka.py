"""Matryoshka TopK SAE (Bussmann et al. 2025, "Learning Multi-Level Features with Matryoshka
Sparse Autoencoders"): a TopK SAE whose first m latents must also reconstruct the input alone,
for each m in a nested list of prefix sizes. Early latents then hold general features (is there
an object here, which colour family) that later latents refine, instead of splitting them into
many narrow ones as a wider plain SAE does. Training differs only in the loss (`sae_loss` reads
`prefix_sizes`); the trained dictionary is an ordinary `TopKSAE`, so it encodes, steers and
exports like one.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..settings import setting
from .kinds import Kind, register
from .train_sae import SAEConfig, _fit


@dataclass
class MatryoshkaConfig(SAEConfig):
    prefixes: list[int] | None = setting(
        None,
        "nested latent counts, each trained to reconstruct alone (the full width always is); "
        "null: n_features / 8, / 4, / 2",
    )

    def __post_init__(self):
        super().__post_init__()
        if self.prefixes is not None:
            p = list(self.prefixes)
            if not p or any(b <= a for a, b in zip(p, p[1:])) or p[0] < 1 or p[-1] > self.n_features:
                raise ValueError(
                    f"prefixes {p} must be strictly increasing latent counts in 1..n_features={self.n_features}"
                )

    @property
    def prefix_sizes(self) -> tuple[int, ...]:
        p = self.prefixes if self.prefixes is not None else [self.n_features // d for d in (8, 4, 2)]
        return tuple(m for m in p if 0 < m < self.n_features)  # the full width is the plain term


KIND = register(
    Kind(
        "matryoshka_sae",
        MatryoshkaConfig,
        _fit,
        order=1,
        sae=True,
        doc="TopK SAE whose nested prefixes of latents each reconstruct alone (Bussmann et al. 2025)",
    )
)
