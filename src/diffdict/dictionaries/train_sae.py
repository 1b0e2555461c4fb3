"""Training loop for `TopKSAE`, following Gao et al. 2024 (and sparsify's trainer in spirit).

* Inputs are normalised with statistics of a sample and the trained weights folded back, so
  the returned SAE acts on raw x. ``scalar`` centres and applies one global scale (the loss is
  proportional to the model-space FVU we report); ``dim`` standardises each dimension (the
  paper's code); ``robust`` (default) is ``scalar`` after shrinking only extreme outlier
  dimensions (std above ``ROBUST_LIMIT`` x the median). Measured in
  benchmarks/results/concept_sweep.md: on the shapes world ``dim`` hides the concepts
  (held-out token AUROC 0.64 vs 0.89 with scalar/robust, and a worse model-space FVU, 0.12 vs
  0.084), because the concept-carrying dimensions are the high-variance ones; with massive
  *nuisance* dimensions ``scalar`` recovers none of the planted atoms and ``robust`` 94%; only when
  massive dimensions scale the atoms themselves does ``dim`` win (100% vs robust 33%).
* b_dec starts at the geometric median of that sample; W_enc = encoder_init_norm x W_dec^T, the
  decoder's rows unit-norm (their entries drawn from ``init_distribution`` first).
* Loss = FVU of the batch + auxk_coef * AuxK, where AuxK asks the top-k_aux *dead* latents to
  reconstruct the residual error, normalised by the error's variance (``auxk_normalizer``;
  0 when nothing is dead).
* ``batch_topk``: the batch, not each token, keeps k latents per token on average; the threshold
  that inference applies instead is a moving average of the smallest activation kept (`TopKSAE`),
  or with ``batch_topk_threshold: calibrated`` the value that keeps k per token on the init sample
  once trained.
* Before each step the decoder gradient's component parallel to each row is removed; after
  it the rows are renormalised.
* Checkpoints (model, optimiser, step, data position, dead counters, RNG, log rows) go to
  ``checkpoint_dir`` every ``checkpoint_every`` steps and at the end; a rerun resumes from the
  last one and, given the same data and seed, ends with identical weights.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from tqdm.auto import tqdm

from ..atomic import atomic_path
from ..settings import check_literals, inert_at_default, setting
from .data import BatchesFactory, rebatch, sample
from .kernels import SparsePattern
from .kinds import FitInputs, Kind, register
from .sae import THRESHOLD_RATE, InitDistribution, TopKSAE

log = logging.getLogger(__name__)

# revived / died: latents whose dead state changed since the previous row (AuxK revives; the main loss starves)
LOG_COLUMNS = ("step", "tokens", "loss", "fvu", "auxk", "l0", "dead_fraction", "revived", "died", "lr", "tokens_per_s")
Normalize = Literal["robust", "scalar", "dim", "none"]
AuxkNormalizer = Literal["residual", "total"]
AuxkGrad = Literal["all", "latents", "decoder"]
BatchTopkThreshold = Literal["moving_average", "calibrated"]
ROBUST_LIMIT = 10.0  # `robust`: the largest std a dimension keeps, in units of the median std


@dataclass
class SAEConfig:
    n_features: int = setting(65536, "latents (the paper's code: 65,536 for d = 3072)", minimum=1)
    k: int = setting(64, "latents kept per token (TopK)", minimum=1)
    batch_size: int = setting(1024, "tokens per optimiser step", minimum=1)
    tokens: int = setting(
        30_000_000, "training budget in tokens; epochs of the training split repeat as needed", minimum=1
    )
    lr: float | None = setting(None, "learning rate; null: 2e-4 / sqrt(n_features / 2**14)", minimum=0)
    lr_warmup_steps: int = setting(50, "linear warm-up steps", minimum=0)
    lr_decay_frac: float = setting(0.2, "linear decay to 0 over this final fraction of steps", minimum=0, maximum=1)
    betas: tuple[float, float] = setting((0.9, 0.999), "Adam betas")
    eps: float = setting(6.25e-10, "Adam epsilon")
    grad_clip: float = setting(1.0, "gradient-norm clip", exclusiveMinimum=0)
    auxk_coef: float = setting(1 / 32, "weight of the AuxK loss (dead latents predict the residual)", minimum=0)
    k_aux: int = setting(
        64,
        "dead latents used by the AuxK loss (the paper's code); d/2 (Gao et al.'s heuristic, sparsify's) gave a "
        "higher FVU on bench_sae's data (benchmarks/results/sae_gap_kaux.md)",
        minimum=0,
    )
    auxk_normalizer: AuxkNormalizer = setting(
        "residual",
        "what AuxK's squared error is divided by: the residual's variance (Gao et al.'s, OpenAI's code) or "
        "the batch's total variance (sparsify's; weaker by the FVU's factor)",
    )
    auxk_grad: AuxkGrad = setting(
        "latents",
        "what the AuxK loss trains: latents: the dead latents' own parameters only (encoder and decoder rows and "
        "biases); all (OpenAI's code; the default until 2026-12-06): b_dec too, through their pre-activations of "
        "x - b_dec; decoder: their decoder rows only (what sparsify 1.3.3's fused backward does). On bench_sae's "
        "data the encoder path gives AuxK's FVU gain and most of its extra dead latents; latents keeps ~2 % more "
        "alive at no higher FVU than all, adopted by a rule fixed before the runs (benchmarks/results/auxk_grad.md)",
    )
    dead_tokens: int | None = setting(
        None, "tokens without firing after which a latent is dead; null: min(10M, tokens // 10)", minimum=1
    )
    normalize: Normalize = setting(
        "robust", "input normalisation (train_sae.normalisation_stats); dim: the paper's code"
    )
    batch_topk: bool = setting(
        False,
        "BatchTopK (Bussmann et al. 2024): training keeps the k*B largest activations of a batch, so k is the "
        "mean per token; inference keeps those above the threshold learnt in training (a JumpReLU)",
    )
    max_k: int | None = setting(
        None,
        "BatchTopK: the most latents one token may keep (the candidates per token, and the width of its codes); "
        "null: 4 x k",
        minimum=1,
    )
    batch_topk_threshold: BatchTopkThreshold = setting(
        "moving_average",
        "BatchTopK: the threshold inference applies. moving_average: of the smallest activation each training "
        "batch kept (the paper's, SAELens'; a run of a few hundred steps ends with it lagging, fewer than k "
        "active per token); calibrated: after training, the value that keeps k per token on average on the "
        "init_tokens sample (benchmarks/results/batch_topk_threshold.md)",
        inert="moving_average",
    )
    init_tokens: int = setting(
        16384,
        "sample for the normalisation statistics, the geometric-median b_dec and a calibrated threshold",
        minimum=1,
    )
    encoder_init_norm: float = setting(
        1.0,
        "norm of the encoder's initial rows (W_enc = norm x W_dec^T); sparsify's nn.Linear init gives about "
        "1/sqrt(3) = 0.577: lower FVU on bench_sae's synthetic data, a head start that the toy's long training "
        "erases (benchmarks/results/texture_world/init_scale.md)",
        exclusiveMinimum=0,
    )
    init_distribution: InitDistribution = setting(
        "uniform",
        "the initial decoder rows' entries before normalising: uniform on [-1, 1] (nn.Linear's, sparsify's) or "
        "normal (directions uniform on the sphere; the default until 2026-12-05); with massive dimensions, normal "
        "rows' heavier tails concentrate the first TopK slots and more latents die "
        "(benchmarks/results/init_topk_share.md). uniform gave a lower held-out FVU on bench_sae's data and the "
        "toy, by rules fixed before the runs (benchmarks/results/texture_world/init_distribution.md)",
    )
    seed: int = setting(0, "initialisation and shuffling seed (replicate r uses seed + r)")
    checkpoint_every: int = setting(
        500, "steps between checkpoints (not a result: changing it retrains nothing)", minimum=1
    )
    log_every: int = setting(50, "steps between train_log.csv rows (not a result)", minimum=1)

    def __post_init__(self):
        self.betas = tuple(self.betas)
        check_literals(self)  # normalize, auxk_normalizer, auxk_grad, init_distribution, batch_topk_threshold
        if not 0 < self.k <= self.n_features:
            raise ValueError(f"k={self.k} must be in 1..n_features={self.n_features}")
        if self.max_k is not None and not self.k <= self.max_k <= self.n_features:
            raise ValueError(f"max_k={self.max_k} must be in k={self.k}..n_features={self.n_features}")
        if self.batch_topk_threshold != "moving_average" and not self.batch_topk:
            raise ValueError(
                f"batch_topk_threshold={self.batch_topk_threshold!r} needs batch_topk: true (a TopK SAE has no "
                "threshold: it keeps k latents per token by construction)"
            )
        if not self.encoder_init_norm > 0:
            raise ValueError(f"encoder_init_norm={self.encoder_init_norm} must be > 0")

    @property
    def lr_value(self) -> float:
        return self.lr if self.lr is not None else 2e-4 / math.sqrt(self.n_features / 2**14)

    @property
    def dead_threshold(self) -> int:
        return self.dead_tokens if self.dead_tokens is not None else min(10_000_000, self.tokens // 10)

    @property
    def total_steps(self) -> int:
        return math.ceil(self.tokens / self.batch_size)

    @property
    def prefix_sizes(self) -> tuple[int, ...]:
        """Nested latent counts that must each reconstruct alone (Matryoshka); none for a TopK SAE."""
        return ()

    def lr_at(self, step: int) -> float:
        warm = min(1.0, (step + 1) / max(1, self.lr_warmup_steps))
        decay_steps = int(self.total_steps * self.lr_decay_frac)
        left = self.total_steps - step
        decay = min(1.0, left / decay_steps) if decay_steps > 0 else 1.0
        return self.lr_value * warm * decay


class TrainingInterrupted(RuntimeError):
    """Raised by ``stop_after``: simulates a killed job (the checkpoint stays)."""


def geometric_median(x: torch.Tensor, iters: int = 100, tol: float = 1e-6) -> torch.Tensor:
    """Weiszfeld's algorithm: the point minimising the sum of Euclidean distances."""
    x = x.double()
    y = x.mean(0)
    for _ in range(iters):
        w = 1 / (x - y).norm(dim=1).clamp_min(1e-8)
        y_new = (w[:, None] * x).sum(0) / w.sum()
        if (y_new - y).norm() <= tol * y.norm().clamp_min(1e-8):
            y = y_new
            break
        y = y_new
    return y.float()


def normalisation_stats(x: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, scale) with x_normalised = (x - mean) / scale."""
    mean = x.double().mean(0)
    if mode == "none":
        return torch.zeros_like(mean).float(), torch.ones_like(mean).float()
    var = x.double().var(0)
    if mode == "dim":
        std = var.sqrt()
        scale = torch.where(std > 1e-6 * std.max().clamp_min(1e-30), std, torch.ones_like(std))
    elif mode == "robust":
        # scalar, except that a dimension whose std exceeds ROBUST_LIMIT x the median dimension's
        # is shrunk to that limit first: massive outlier dimensions cannot dominate the loss,
        # while the ordinary high-variance dimensions (which carry the concepts in the shapes
        # world, benchmarks/results/concept_sweep.md) keep their weight and nothing is amplified.
        std = var.sqrt()
        shrink = (std / (ROBUST_LIMIT * std.median().clamp_min(1e-30))).clamp_min(1.0)
        scale = shrink * (var / shrink**2).mean().sqrt().clamp_min(1e-30)
    else:
        scale = var.mean().sqrt().clamp_min(1e-30).expand_as(mean).clone()
    return mean.float(), scale.float()


def sae_loss(sae: TopKSAE, x: torch.Tensor, dead: torch.Tensor, cfg: SAEConfig):
    """-> (loss, fvu, auxk, values, index) for a normalised batch x; ``dead`` [n_features] bool.
    values and index: the batch's codes, [B, k] (TopK) or flat over the batch (BatchTopK's ragged codes).

    FVU is centred on the batch mean. AuxK: the top-k_aux dead latents reconstruct the error
    e = x - x_hat (detached), normalised by e's variance (or x's, ``cfg.auxk_normalizer``) and
    scaled by min(1, n_dead / k_aux) while few latents are dead; exactly 0 when none is. With
    ``cfg.prefix_sizes`` (Matryoshka) the reconstruction term is the mean FVU of the full code
    and of each prefix's share of it. ``cfg.auxk_grad``: which parameters AuxK's gradient reaches."""
    n_dead = int(dead.sum())
    k_aux = min(cfg.k_aux, n_dead) if cfg.auxk_coef > 0 else 0
    patterns = SparsePattern(), SparsePattern()  # one sort per index set, shared by encoder and decoder
    values, index, aux_v, aux_i = sae.encode_topk(
        x, dead if k_aux else None, k_aux, patterns, aux_input_grad=cfg.auxk_grad == "all"
    )
    e = x - sae.decode_sparse(values, index, pattern=patterns[0]).float()
    total = (x - x.mean(0)).pow(2).sum()
    fvu = e.pow(2).sum() / total
    recon = fvu
    if prefixes := cfg.prefix_sizes:
        # the same codes, latents past the prefix zeroed: the index set (and its sort) is unchanged
        nested = [
            (x - sae.decode_sparse(values * (index < m), index, pattern=patterns[0]).float()).pow(2).sum() / total
            for m in prefixes
        ]
        recon = (fvu + sum(nested)) / (1 + len(nested))
    auxk = x.new_zeros(())
    if k_aux:
        r = e.detach()
        if cfg.auxk_grad == "decoder":
            aux_v = aux_v.detach()
        e_hat = sae.decode_sparse(aux_v, aux_i, bias=False, pattern=patterns[1]).float()
        norm = (r - r.mean(0)).pow(2).sum() if cfg.auxk_normalizer == "residual" else total
        auxk = (e_hat - r).pow(2).sum() / norm * min(1.0, n_dead / cfg.k_aux)
    return recon + cfg.auxk_coef * auxk, fvu, auxk, values, index


def train_sae(
    factory: BatchesFactory,
    d_model: int,
    cfg: SAEConfig,
    checkpoint_dir: Path | None = None,
    log_path: Path | None = None,
    device: str | torch.device = "cpu",
    site: str = "?",
    stop_after: int | None = None,
    callback: Callable[[int, dict], None] | None = None,
    progress: bool = True,
) -> TopKSAE:
    """Train (or resume) a TopK SAE; returns it folded into model space."""
    device = torch.device(device)
    ckpt_path = Path(checkpoint_dir) / "checkpoint.pt" if checkpoint_dir else None
    init = sample(factory, cfg.init_tokens, site).x
    # the data's fingerprint too: a checkpoint of other activations (a changed split) must not resume;
    # settings at their inert default left out, as in a job's params: a checkpoint from before one existed resumes
    cfg_sig = inert_at_default(type(cfg), asdict(cfg))
    signature = {"cfg": cfg_sig, "d_model": d_model, "site": site, "data": _fingerprint(init)}
    signature["cfg"].pop("checkpoint_every"), signature["cfg"].pop("log_every")

    sae = TopKSAE(d_model, cfg.n_features, cfg.k, cfg.batch_topk, cfg.max_k).to(device)
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr_value, betas=cfg.betas, eps=cfg.eps, fused=True)
    st = _load_checkpoint(ckpt_path, signature, device)
    if st is not None:
        sae.load_state_dict(st["model"])
        opt.load_state_dict(st["optim"])
        torch.set_rng_state(st["rng"].cpu())
        log.info("site %s: resuming from step %d (%d tokens)", site, st["step"], st["tokens"])
    else:
        torch.manual_seed(cfg.seed)
        mean, scale = normalisation_stats(init, cfg.normalize)
        gen = torch.Generator().manual_seed(cfg.seed)
        sae.init_weights(geometric_median((init - mean) / scale), gen, cfg.encoder_init_norm, cfg.init_distribution)
        sae.to(device)
        st = {
            "step": 0,
            "tokens": 0,
            "epoch": 0,
            "offset": 0,
            "rows": [],
            "mean": mean,
            "scale": scale,
            "since_fired": torch.zeros(cfg.n_features, dtype=torch.long),
            "was_dead": torch.zeros(cfg.n_features, dtype=torch.bool),
        }
    mean, scale = st["mean"].to(device), st["scale"].to(device)
    since_fired = st["since_fired"].to(device)
    was_dead = st.get("was_dead", since_fired >= cfg.dead_threshold).to(device)  # the dead set at the last log row
    rows: list[dict] = st["rows"]
    step, tokens = st["step"], st["tokens"]

    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    data = rebatch(factory, cfg.batch_size, site, st["epoch"], st["offset"])
    bar = tqdm(
        total=cfg.tokens,
        initial=tokens,
        unit="tok",
        unit_scale=True,
        mininterval=5,
        desc=f"sae {site}",
        disable=not progress,
    )
    win, acc = {"t": time.perf_counter(), "tokens": tokens, "step": step}, torch.zeros(4, device=device)
    position = (st["epoch"], st["offset"])
    sae.train()
    while tokens < cfg.tokens:
        batch, *position = next(data)
        x = (batch.x.to(device, non_blocking=True) - mean) / scale
        with autocast:
            loss, fvu, auxk, values, index = sae_loss(sae, x, since_fired >= cfg.dead_threshold, cfg)

        opt.zero_grad(set_to_none=True)
        loss.backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        clip_gradients(sae, cfg.grad_clip)
        lr = cfg.lr_at(step)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        sae.set_decoder_norm_to_unit_norm()

        with torch.no_grad():
            if sae.batch_topk:  # the first batch sets the threshold, later ones move it
                sae.update_threshold(values, 1.0 if step == 0 else THRESHOLD_RATE)
            fired = index[values > 0]
            since_fired += len(x)
            since_fired[fired] = 0
            acc += torch.stack([loss, fvu, auxk, (values > 0).sum() / len(x)]).detach()  # no GPU sync
        step += 1
        tokens += len(x)
        bar.update(len(x))

        last = tokens >= cfg.tokens
        if step % cfg.log_every == 0 or last:
            now = time.perf_counter()
            m = (acc / (step - win["step"])).tolist()
            if not math.isfinite(m[0]):
                raise FloatingPointError(f"site '{site}': SAE loss became {m[0]} before step {step}")
            dead = since_fired >= cfg.dead_threshold
            row = {
                "step": step,
                "tokens": tokens,
                "loss": m[0],
                "fvu": m[1],
                "auxk": m[2],
                "l0": m[3],
                "dead_fraction": float(dead.float().mean()),
                "revived": int((was_dead & ~dead).sum()),
                "died": int((dead & ~was_dead).sum()),
                "lr": lr,
                "tokens_per_s": (tokens - win["tokens"]) / max(now - win["t"], 1e-9),
            }
            rows.append(row)
            bar.set_postfix(fvu=f"{row['fvu']:.3f}", l0=f"{row['l0']:.1f}", dead=f"{row['dead_fraction']:.2f}")
            if callback is not None:
                callback(step, row)
            win, acc = {"t": time.perf_counter(), "tokens": tokens, "step": step}, acc.zero_()
            was_dead = dead
        if ckpt_path is not None and (step % cfg.checkpoint_every == 0 or last):
            _save_checkpoint(
                ckpt_path, signature, sae, opt, step, tokens, position, since_fired, was_dead, rows, mean, scale
            )
        if stop_after is not None and step >= stop_after and not last:
            bar.close()
            raise TrainingInterrupted(f"stopped after step {step} (stop_after)")
    bar.close()

    if log_path is not None:
        write_log(log_path, rows)
    sae.eval()
    if sae.batch_topk and cfg.batch_topk_threshold == "calibrated":  # same pre-activations in both spaces
        sae.calibrate_threshold((init.to(device) - mean) / scale)
    out = sae.fold_normalisation(mean, scale)
    out.build_info = {
        "steps": step,
        "tokens": tokens,
        "normalize": cfg.normalize,
        "final_fvu": rows[-1]["fvu"] if rows else None,
        "dead_fraction": rows[-1]["dead_fraction"] if rows else None,
    }
    if sae.batch_topk:
        out.build_info |= {"threshold": float(out.threshold[0]), "batch_topk_threshold": cfg.batch_topk_threshold}
    return out


def clip_gradients(module: torch.nn.Module, max_norm: float) -> None:
    """``clip_grad_norm_``, minus its rescaling pass over every gradient when the norm is already
    below ``max_norm`` (the usual case; on CPU the check costs no sync)."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads)
    if norm.device.type != "cpu" or float(norm) > max_norm:
        torch.nn.utils.clip_grads_with_norm_(grads, max_norm, norm)


def write_log(path: str | Path, rows: list[dict], columns: tuple[str, ...] = LOG_COLUMNS) -> None:
    """Atomically write training-log rows as CSV."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def _fingerprint(x: torch.Tensor) -> str:
    """Hash of the first tokens of epoch 0 (seeded shuffle): changes with the data or its order."""
    return hashlib.sha1(x.detach().cpu().float().contiguous().numpy().tobytes()).hexdigest()[:16]


def _save_checkpoint(path, signature, sae, opt, step, tokens, position, since_fired, was_dead, rows, mean, scale):
    st = {
        "signature": signature,
        "model": sae.state_dict(),
        "optim": opt.state_dict(),
        "step": step,
        "tokens": tokens,
        "epoch": position[0],
        "offset": position[1],
        "since_fired": since_fired.cpu(),
        "was_dead": was_dead.cpu(),
        "rows": rows,
        "mean": mean.cpu(),
        "scale": scale.cpu(),
        "rng": torch.get_rng_state(),
    }
    with atomic_path(path) as tmp:
        torch.save(st, tmp)
    write_log(path.with_name("train_log.csv"), rows)  # live copy, for watching a long run


def _load_checkpoint(path, signature, device):
    if path is None or not path.exists():
        return None
    st = torch.load(path, map_location=device, weights_only=False)
    if st.get("signature") != signature:
        log.warning("%s was written for other settings; starting afresh", path)
        return None
    return st


def _fit(cfg: SAEConfig, i: FitInputs) -> TopKSAE:
    return train_sae(
        i.batches,
        i.d_model,
        cfg,
        i.checkpoint_dir,
        i.log_path,
        i.device,
        i.site,
        stop_after=i.stop_after,
        callback=i.callback,
        progress=i.progress,
    )


KIND = register(
    Kind("topk_sae", SAEConfig, _fit, order=0, sae=True, doc="TopK sparse autoencoder (Gao et al. 2024), trained here")
)
