"""ITDA: Inference-Time Decomposition of Activations (Leask et al. 2025).

The dictionary is a set of real activations. Building is one pass over the data in batches:
encode the batch with the current atoms (pursuit with target L0 ``k``); every token that the
dictionary reconstructs poorly becomes an atom itself (normalised to unit norm), until
``max_atoms``. Encoding later is the same pursuit, so codes are non-negative by default.

Geometry: atoms live in a normalised space, x_n = (x - mean) / scale (mean subtraction always;
``normalize: robust``, the default, rescales and shrinks only extreme outlier dimensions;
``dim`` divides by the per-dimension std, as the paper's code does; ``scalar`` only rescales,
which leaves cosines, and so the build, unchanged). The
pursuit runs there; `decode` maps back, ``x_hat = mean + scale * sum_i c_i atom_i``, so codes
and reconstructions are in model space (model-space decoder rows are ``scale * atom_i``; their
norms are ``decoder_norms``).

Threshold: a token becomes an atom when cos(x_n, x_hat_n) < ``cos_threshold``. The reference
code thresholds the normalised MSE between unit vectors,
``mse_norm = mean((x/|x| - x_hat/|x_hat|)^2) = (2 - 2 cos) / d``, whose meaning shifts with d
(cos = 1 - d * mse_norm / 2: a threshold of 0.6 at d = 3072 asks for cos < -920, never true).
To translate a reference threshold: ``cos_threshold = 1 - d * mse_norm / 2``.

A token counts as well reconstructed as soon as *some* code with L0 <= k reaches the threshold
(the pursuit stops early for it), which makes building much cheaper than encoding k atoms for
every token.

Extension over the paper (``dedupe``, on by default): candidates of one batch that are within
``cos_threshold`` of an earlier candidate of the same batch are skipped, so one batch does not
add near-copies of the same activation; skipped tokens can still be added from later batches.

Every atom keeps its provenance: ``atom_row`` (row in the source store, or stream position
when the batches carried none), ``atom_prompt_id``, ``atom_step``, ``atom_token`` (-1: unknown).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..settings import check_literals, setting
from .base import Dictionary, SparseCodes
from .data import BatchesFactory, rebatch, sample
from .kinds import FitInputs, Kind, register
from .pursuit import PURSUITS, Pursuit, pursuit, use_gram
from .train_sae import Normalize, normalisation_stats, write_log

log = logging.getLogger(__name__)
PROVENANCE = ("row", "prompt_id", "step", "token")


class ITDA(Dictionary):
    kind = "itda"

    def __init__(self, d_model: int, n_features: int, k: int, pursuit: str = "gradient", chunk: int = 4096):
        super().__init__()
        if pursuit not in PURSUITS:
            raise ValueError(f"pursuit '{pursuit}' is not one of {list(PURSUITS)}")
        self.d_model, self.n_features, self.k, self.pursuit, self.chunk = d_model, n_features, k, pursuit, chunk
        self.register_buffer("atoms", torch.zeros(n_features, d_model))
        self.register_buffer("mean", torch.zeros(d_model))
        self.register_buffer("scale", torch.ones(d_model))
        for p in PROVENANCE:
            self.register_buffer(f"atom_{p}", torch.full((n_features,), -1, dtype=torch.long))

    def hparams(self) -> dict:
        return {**super().hparams(), "k": self.k, "pursuit": self.pursuit}

    def gram(self) -> torch.Tensor | None:
        """atoms @ atoms.T when the atom-space pursuit pays (`pursuit.use_gram`), cached until
        the atoms change (not saved: it is derived)."""
        if not use_gram(self.n_features, self.d_model):
            return None
        key = (self.atoms.data_ptr(), self.atoms._version, self.atoms.device)
        if getattr(self, "_gram_key", None) != key:
            self._gram, self._gram_key = self.atoms @ self.atoms.T, key
        return self._gram

    def encode_normalised(self, xn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gram = self.gram()
        parts = [
            pursuit(self.pursuit, xn[a : a + self.chunk], self.atoms, self.k, gram=gram)
            for a in range(0, xn.shape[0], self.chunk)
        ]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> SparseCodes:
        values, index = self.encode_normalised((x.to(self.atoms.dtype) - self.mean) / self.scale)
        return SparseCodes(index, values)

    @torch.no_grad()
    def decode(self, codes: SparseCodes) -> torch.Tensor:
        # sum_i c_i (scale * a_i) = scale * sum_i c_i a_i: no [n_atoms, d] temporary
        xn = F.embedding_bag(
            codes.indices, self.atoms, per_sample_weights=codes.values.to(self.atoms.dtype), mode="sum"
        )
        return self.mean + self.scale * xn

    @property
    def decoder_norms(self) -> torch.Tensor:
        return (self.atoms * self.scale).norm(dim=1)

    @property
    def directions(self) -> torch.Tensor:
        return F.normalize(self.atoms * self.scale, dim=1)

    def provenance(self) -> dict[str, torch.Tensor]:
        return {p: getattr(self, f"atom_{p}") for p in PROVENANCE}


@dataclass
class ITDAConfig:
    k: int = setting(32, "target L0 of the pursuit (the paper's code)", minimum=1)
    cos_threshold: float = setting(0.8, "add a token as an atom when cos(x, x_hat) is below this")
    max_atoms: int = setting(50_000, "dictionary size limit", minimum=1)
    batch_size: int = setting(256, "tokens per building batch", minimum=1)
    tokens: int | None = setting(
        None, "tokens to read while building; null: one pass over the training split", minimum=1
    )
    pursuit: Pursuit = setting("gradient", "sparse pursuit used to encode")
    normalize: Normalize = setting(
        "robust", "input normalisation (train_sae.normalisation_stats); dim: the paper's code"
    )
    dedupe: bool = setting(True, "skip a candidate atom that duplicates one already added")
    init_tokens: int = setting(16384, "sample for the normalisation statistics", minimum=1)
    seed: int = setting(0, "shuffling seed (replicate r uses seed + r)")
    log_every: int = setting(10, "batches between train_log.csv rows (not a result)", minimum=1)

    def __post_init__(self):
        check_literals(self)  # pursuit, normalize
        if not 0 < self.cos_threshold <= 1:  # non-negative codes can give x_hat = 0, cos = 0
            raise ValueError(f"cos_threshold {self.cos_threshold} must be in (0, 1]")


@torch.no_grad()
def build_itda(
    factory: BatchesFactory,
    d_model: int,
    cfg: ITDAConfig,
    log_path: Path | None = None,
    device: str | torch.device = "cpu",
    site: str = "?",
    progress: bool = True,
) -> ITDA:
    device = torch.device(device)
    torch.manual_seed(cfg.seed)
    init = sample(factory, cfg.init_tokens, site).x
    mean, scale = normalisation_stats(init, cfg.normalize)
    if cfg.normalize == "none":  # ITDA always centres: atoms are directions around the mean
        mean = init.double().mean(0).float()
    mean, scale = mean.to(device), scale.to(device)

    d = ITDA(d_model, cfg.max_atoms, cfg.k, cfg.pursuit).to(device)
    prov = {p: torch.full((cfg.max_atoms,), -1, dtype=torch.long) for p in PROVENANCE}
    n = 0
    gram = None  # atoms[:n] @ atoms[:n].T while the atom-space pursuit pays
    rows, seen, step, t0 = [], 0, 0, time.perf_counter()
    one_pass = cfg.tokens is None
    bar = tqdm(total=cfg.tokens, unit="tok", unit_scale=True, mininterval=5, desc=f"itda {site}", disable=not progress)
    for batch, epoch, _ in rebatch(factory, cfg.batch_size, site):
        if (one_pass and epoch > 0) or (cfg.tokens is not None and seen >= cfg.tokens) or n >= cfg.max_atoms:
            break
        xn = (batch.x.to(device) - mean) / scale
        if n:
            coef, idx = pursuit(cfg.pursuit, xn, d.atoms[:n], cfg.k, stop_cos=cfg.cos_threshold, gram=gram)
            xh = F.embedding_bag(idx, d.atoms[:n], per_sample_weights=coef, mode="sum")
            cos = F.cosine_similarity(xn, xh, dim=1)
            err = (xn - xh).pow(2).sum()
        else:
            cos, err = xn.new_zeros(len(xn)), xn.pow(2).sum()
        fvu = float(err / (xn - xn.mean(0)).pow(2).sum().clamp_min(1e-30))  # early-stopped codes: an upper bound
        norms = xn.norm(dim=1)
        cand = ((cos < cfg.cos_threshold) & (norms > 0)).nonzero().squeeze(1)
        cand = cand[cos[cand].argsort()]  # worst first
        u = xn[cand] / norms[cand, None]
        if cfg.dedupe and len(cand) > 1:
            close = torch.tril(u @ u.T, diagonal=-1) >= cfg.cos_threshold
            keep = ~close.any(1)
            cand, u = cand[keep], u[keep]
        add = min(len(cand), cfg.max_atoms - n)
        d.atoms[n : n + add] = u[:add]
        for p in PROVENANCE:
            if p in batch.meta:
                prov[p][n : n + add] = batch.meta[p][cand[:add].cpu()]
        gram = _grow_gram(gram, d.atoms, n, n + add)
        n += add
        seen += len(xn)
        step += 1
        bar.update(len(xn))
        row = {
            "step": step,
            "tokens": seen,
            "n_atoms": n,
            "added": add,
            "fvu": fvu,
            "mean_cos": float(cos.mean()),
            "tokens_per_s": seen / (time.perf_counter() - t0),
        }
        if step % cfg.log_every == 0 or n >= cfg.max_atoms:
            rows.append(row)
            bar.set_postfix(atoms=n, fvu=f"{fvu:.3f}")
    bar.close()
    if step and (not rows or rows[-1]["step"] != step):
        rows.append(row)
    if n == 0:
        raise ValueError(f"site '{site}': ITDA found no atoms (all-zero activations?)")
    if log_path is not None:
        write_log(log_path, rows, columns=("step", "tokens", "n_atoms", "added", "fvu", "mean_cos", "tokens_per_s"))

    out = ITDA(d_model, n, cfg.k, cfg.pursuit).to(device)
    out.atoms.copy_(d.atoms[:n])
    out.mean.copy_(mean)
    out.scale.copy_(scale)
    for p in PROVENANCE:
        getattr(out, f"atom_{p}").copy_(prov[p][:n])
    out.build_info = {"tokens": seen, "n_atoms": n, "positional_rows": bool(batch.positional)}
    log.info("site %s: ITDA with %d atoms from %d tokens", site, n, seen)
    return out


def _grow_gram(gram, atoms, n, m):
    """The Gram matrix of atoms[:m] from that of atoms[:n]: a new contiguous [m, m] tensor (the
    pursuit gathers its rows, so it must not be a slice of a larger buffer); None once the
    atom-space pursuit no longer pays."""
    if not use_gram(m, atoms.shape[1]):
        return None
    if gram is not None and m == n:
        return gram
    new = atoms.new_empty(m, m)
    if gram is None:
        new.copy_(atoms[:m] @ atoms[:m].T)
        return new
    block = atoms[n:m] @ atoms[:m].T
    new[:n, :n] = gram
    new[n:m] = block
    new[:n, n:m] = block[:, :n].T
    return new


def _fit(cfg: ITDAConfig, i: FitInputs) -> ITDA:
    return build_itda(i.batches, i.d_model, cfg, i.log_path, i.device, i.site, i.progress)


KIND = register(
    Kind("itda", ITDAConfig, _fit, order=1, doc="inference-time decomposition of activations: atoms are real tokens")
)
