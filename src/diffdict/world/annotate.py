"""Annotator for generated images: which objects are where, with what colour and shape.

Pipeline per image (vectorised over the batch where it matters):
1. background colour = median of the border pixels; foreground = pixels farther than
   ``fg_threshold`` (RGB distance) from it; background name = nearest background prototype.
2. objects = 4-connected foreground components (label propagation with max-pooling) larger
   than ``min_pixels``.
3. each object is cropped to its bounding box, padded square and resized to 16x16
   (mask + RGB channels); a small CNN names its colour and shape. Size comes from the
   bounding-box extent and position from the centroid's quadrant (rules: they are geometry);
   in the texture world, texture from the object's brightness on the four cells of the
   texture lattice (a rule too: the lattice is fixed to the image).
The CNN is trained on renderings *and* their VAE reconstructions, so it has seen the soft
edges and colour drift of decoded images.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .scene import (
    BACKGROUNDS,
    COLORS,
    CONCEPTS,
    POSITIONS,
    SHAPES,
    SIZE_EXTENT,
    TEXTURE_CELL,
    TEXTURE_CONCEPTS,
    TEXTURE_DARK,
    TEXTURES,
    Scene,
    object_concepts,
    world_concepts,
)

log = logging.getLogger(__name__)

CROP = 16
COLOR_NAMES = list(COLORS)
BG_NAMES = list(BACKGROUNDS)


class ObjectNet(nn.Module):
    """4x16x16 crop (mask, RGB in [-1, 1] masked) -> colour and shape logits."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(4, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.color = nn.Linear(width + 3, len(COLOR_NAMES))  # + mean object colour
        self.shape = nn.Linear(width, len(SHAPES))

    def forward(self, crops: torch.Tensor, mean_rgb: torch.Tensor):
        h = self.body(crops)
        return self.color(torch.cat([h, mean_rgb], 1)), self.shape(h)


def _components(fg: torch.Tensor, max_iter: int = 128) -> torch.Tensor:
    """8-connected component labels of a bool batch [B,H,W]: 0 = background, else a label (the
    largest flat index + 1 in the component), by max-pool propagation to a fixed point."""
    b, h, w = fg.shape
    fgf = fg.float()[:, None]
    lab = fgf * torch.arange(1, h * w + 1, dtype=torch.float32).view(1, 1, h, w)
    for i in range(max_iter):
        new = F.max_pool2d(lab, 3, stride=1, padding=1) * fgf
        if i % 8 == 7 and torch.equal(new, lab):
            break
        lab = new
    return lab[:, 0].long()


@functools.cache
def _texture_templates() -> np.ndarray:
    """[n_textures, 4]: each texture's brightness on the lattice cells (row parity, column
    parity) = (0,0), (0,1), (1,0), (1,1), relative to its bright cells."""
    from .render import texture_cells

    cells = np.array([[0, 0], [0, 1], [1, 0], [1, 1]]) * TEXTURE_CELL
    return np.array(
        [[TEXTURE_DARK if texture_cells(t, 2 * TEXTURE_CELL)[y, x] else 1.0 for y, x in cells] for t in TEXTURES]
    )


def texture_of(image: np.ndarray, mask: np.ndarray) -> str:
    """The texture whose lattice template is nearest the object's mean brightness on each of the
    four lattice cells (normalised by the brightest): a rule, robust to a decoder's softened contrast."""
    h, w = mask.shape
    ys, xs = np.mgrid[0:h, 0:w] // TEXTURE_CELL % 2
    lum = np.asarray(image, np.float64).mean(-1)
    cell = (2 * ys + xs)[mask]
    sums = np.bincount(cell, weights=lum[mask], minlength=4)
    counts = np.bincount(cell, minlength=4)
    means = sums / np.maximum(counts, 1)
    rel = means / max(means.max(), 1e-6)
    return TEXTURES[int(np.linalg.norm(_texture_templates() - rel, axis=1).argmin())]


@dataclass
class Detection:
    mask: np.ndarray  # bool [H, W]
    color: str
    shape: str
    size: str
    position: str
    color_p: float = 1.0
    shape_p: float = 1.0
    texture: str | None = None  # the texture world only

    def concepts(self) -> list[str]:
        return object_concepts(self)


@dataclass
class Annotator:
    net: ObjectNet
    fg_threshold: float = 50.0
    min_pixels: int = 12
    size_extent: float = SIZE_EXTENT  # bbox extent (fraction of side) above which an object is "large"
    token_threshold: float = 0.25  # min fraction of a token's pixels an object must cover
    report: dict = field(default_factory=dict)

    concepts: list[str] = field(default_factory=lambda: list(CONCEPTS))

    @property
    def textures(self) -> bool:
        """Whether this annotator names textures (the texture world's concept list)."""
        return TEXTURE_CONCEPTS[0] in self.concepts

    # ---- segmentation -------------------------------------------------------------------
    def background(self, images: np.ndarray) -> tuple[np.ndarray, list[str]]:
        border = np.concatenate([images[:, 0], images[:, -1], images[:, :, 0], images[:, :, -1]], 1)
        bg = np.median(border.astype(np.float32), axis=1)  # [B, 3]
        protos = np.array([BACKGROUNDS[n] for n in BG_NAMES], np.float32)
        names = [BG_NAMES[i] for i in np.linalg.norm(bg[:, None] - protos[None], axis=-1).argmin(1)]
        return bg, names

    def segment(self, images: np.ndarray) -> tuple[list[list[np.ndarray]], list[str]]:
        """Per image, the object masks (reading order) and the background name."""
        bg, names = self.background(images)
        dist = np.linalg.norm(images.astype(np.float32) - bg[:, None, None], axis=-1)
        lab = _components(torch.from_numpy(dist > self.fg_threshold)).numpy()
        out = []
        for i in range(len(images)):
            ids, counts = np.unique(lab[i][lab[i] > 0], return_counts=True)
            ms = [lab[i] == j for j, c in zip(ids, counts) if c >= self.min_pixels]
            out.append(sorted(ms, key=lambda m: _position_index(m)))
        return out, names

    # ---- classification -----------------------------------------------------------------
    @staticmethod
    def crops(images: np.ndarray, masks: list[tuple[int, np.ndarray]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(image index, mask) pairs -> crops [M,4,16,16] (the object's square bounding box,
        resampled) and mean object colours [M,3], in one batched ``grid_sample``."""
        if not masks:
            return torch.zeros(0, 4, CROP, CROP), torch.zeros(0, 3)
        idx = torch.tensor([i for i, _ in masks])
        m = torch.from_numpy(np.stack([mm for _, mm in masks])).float()  # [M,H,W]
        rgb = torch.from_numpy(np.asarray(images))[idx].permute(0, 3, 1, 2).float() / 127.5 - 1
        x = torch.cat([m[:, None], rgb * m[:, None]], 1)  # [M,4,H,W]
        h, w = m.shape[1:]
        rows, cols = m.amax(2) > 0, m.amax(1) > 0
        ar_h, ar_w = torch.arange(h).float(), torch.arange(w).float()
        y0 = torch.where(rows, ar_h, float(h)).amin(1)
        y1 = torch.where(rows, ar_h, -1.0).amax(1) + 1
        x0 = torch.where(cols, ar_w, float(w)).amin(1)
        x1 = torch.where(cols, ar_w, -1.0).amax(1) + 1
        side = torch.maximum(y1 - y0, x1 - x0)
        cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
        # affine grid in normalised coords (align_corners=False): centre and half-side
        theta = torch.zeros(len(masks), 2, 3)
        theta[:, 0, 0] = side / w
        theta[:, 1, 1] = side / h
        theta[:, 0, 2] = cx / w * 2 - 1
        theta[:, 1, 2] = cy / h * 2 - 1
        grid = F.affine_grid(theta, (len(masks), 4, CROP, CROP), align_corners=False)
        crops = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        means = (rgb * m[:, None]).sum((2, 3)) / m.sum((1, 2))[:, None]
        return crops, means

    @torch.no_grad()
    def detect(self, images: np.ndarray) -> tuple[list[list[Detection]], list[str]]:
        """Per image, the detected objects and the background name."""
        images = np.asarray(images)
        seg, bgs = self.segment(images)
        flat = [(i, m) for i, ms in enumerate(seg) for m in ms]
        crops, means = self.crops(images, flat)
        self.net.eval()
        if len(flat):
            pc, ps = (F.softmax(z, -1) for z in self.net(crops, means))
        dets: list[list[Detection]] = [[] for _ in images]
        side = images.shape[1]
        for j, (i, m) in enumerate(flat):
            ys, xs = np.nonzero(m)
            extent = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) / side
            dets[i].append(
                Detection(
                    mask=m,
                    color=COLOR_NAMES[int(pc[j].argmax())],
                    shape=SHAPES[int(ps[j].argmax())],
                    size="large" if extent > self.size_extent else "small",
                    position=POSITIONS[_position_index(m)],
                    color_p=float(pc[j].max()),
                    shape_p=float(ps[j].max()),
                    texture=texture_of(images[i], m) if self.textures else None,
                )
            )
        return dets, bgs

    def annotate(self, images: np.ndarray) -> list[set[str]]:
        """Per image, the set of concepts present ("color=red", ..., "background=dark")."""
        dets, bgs = self.detect(images)
        return [{c for d in ds for c in d.concepts()} | {f"background={b}"} for ds, b in zip(dets, bgs)]

    def token_masks(self, images: np.ndarray, grid: tuple[int, int] = (8, 8)) -> np.ndarray:
        """bool [B, gh, gw, n_concepts]: token (r, c) carries an object concept when that object
        covers at least ``token_threshold`` of the token's pixels; the background concept marks
        the tokens no object covers."""
        dets, bgs = self.detect(images)
        return self._token_masks(dets, bgs, np.asarray(images).shape[1:3], grid)

    def _token_masks(self, dets, bgs, hw, grid) -> np.ndarray:
        gh, gw = grid
        index = {c: k for k, c in enumerate(self.concepts)}
        out = np.zeros((len(dets), gh, gw, len(self.concepts)), bool)
        for i, (ds, b) in enumerate(zip(dets, bgs)):
            covered = np.zeros((gh, gw), bool)
            for d in ds:
                cov = coverage(d.mask, grid) >= self.token_threshold
                covered |= cov
                for c in d.concepts():
                    out[i, :, :, index[c]] |= cov
            out[i, :, :, index[f"background={b}"]] = ~covered
        return out

    # ---- persistence --------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, str(path / "annotator.safetensors"))
        cfg = {
            "fg_threshold": self.fg_threshold,
            "min_pixels": self.min_pixels,
            "size_extent": self.size_extent,
            "token_threshold": self.token_threshold,
            "concepts": self.concepts,
            "report": self.report,
            "width": self.net.body[0].out_channels,
        }
        (path / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Annotator:
        """Load from an annotator folder or a toy model folder that contains ``annotator/``."""
        from safetensors.torch import load_file

        path = Path(path)
        if (path / "annotator").is_dir():
            path = path / "annotator"
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"no annotator at {path} (expected config.json + annotator.safetensors)")
        cfg = json.loads((path / "config.json").read_text())
        net = ObjectNet(cfg.pop("width"))
        net.load_state_dict(load_file(str(path / "annotator.safetensors")))
        return cls(net=net.eval(), **cfg)


def coverage(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Fraction of each token's pixels covered by `mask` [H, W] -> [gh, gw]."""
    h, w = mask.shape
    gh, gw = grid
    return mask.reshape(gh, h // gh, gw, w // gw).mean(axis=(1, 3))


def _position_index(m: np.ndarray) -> int:
    ys, xs = np.nonzero(m)
    h, w = m.shape
    return 2 * int(ys.mean() >= h / 2) + int(xs.mean() >= w / 2)


# ---- training and evaluation ------------------------------------------------------------
def _labelled_crops(ann: Annotator, scenes: list[Scene], images: np.ndarray):
    """Segment `images`, match each found component to the true object at its quadrant, and
    return crops, mean colours and (colour, shape) labels."""
    seg, _ = ann.segment(images)
    pairs, yc, ys = [], [], []
    for i, (s, ms) in enumerate(zip(scenes, seg)):
        by_pos = {o.position: o for o in s.objects}
        for m in ms:
            o = by_pos.get(POSITIONS[_position_index(m)])
            if o is None:
                continue
            pairs.append((i, m))
            yc.append(COLOR_NAMES.index(o.color))
            ys.append(SHAPES.index(o.shape))
    crops, means = ann.crops(images, pairs)
    return crops, means, torch.tensor(yc), torch.tensor(ys)


def train_annotator(
    scenes: list[Scene],
    images: np.ndarray,
    masks,
    recon: np.ndarray | None = None,
    seed: int = 0,
    steps: int = 800,
    batch_size: int = 256,
    lr: float = 3e-3,
    eval_recon_fn=None,
    textures: bool = False,
) -> tuple[Annotator, dict]:
    """Train the object classifier on renderings (and VAE reconstructions `recon`), then
    measure accuracy on freshly drawn held-out renderings (and their reconstructions, when
    ``eval_recon_fn`` maps uint8 images to reconstructions). `textures`: the texture world's
    annotator (its concept list names textures; the texture rule needs no training)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    ann = Annotator(net=ObjectNet(), concepts=world_concepts(textures))
    parts = [_labelled_crops(ann, scenes, images)]
    if recon is not None:
        parts.append(_labelled_crops(ann, scenes, recon))
    crops, means, yc, ys = (torch.cat(t) for t in zip(*parts))
    opt = torch.optim.Adam(ann.net.parameters(), lr=lr)
    ann.net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(crops), (batch_size,), generator=g)
        x = crops[idx]
        # augment: small colour jitter and mask-edge noise, for the drift of generated images
        x = x + 0.05 * torch.randn(x.shape, generator=g) * (x[:, :1] > 0)
        lc, ls = ann.net(x, means[idx] + 0.03 * torch.randn(len(idx), 3, generator=g))
        loss = F.cross_entropy(lc, yc[idx]) + F.cross_entropy(ls, ys[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    ann.net.eval()
    report = {"train_objects": int(len(crops)), "final_loss": float(loss.detach())}
    report["heldout_render"] = evaluate_annotator(ann, seed=seed + 1)
    if recon is not None and eval_recon_fn is not None:
        report["heldout_vae_recon"] = evaluate_annotator(ann, seed=seed + 1, transform=eval_recon_fn)
    ann.report = report
    log.info("annotator: %s", report)
    return ann, report


def evaluate_annotator(ann: Annotator, n: int = 1000, seed: int = 1, transform=None) -> dict:
    """Accuracy on held-out renderings (a seed stream no training uses). Each true object counts
    once: right when the annotator finds an object at its quadrant with the right attribute."""
    from . import sample_scenes
    from .render import render_batch

    scenes, _, _ = sample_scenes(n, seed, domain=0x4556, textures=ann.textures)  # "EV": evaluation-only stream
    images, _ = render_batch(scenes)
    if transform is not None:
        images = transform(images)
    dets, bgs = ann.detect(images)
    hits = {"color": 0, "shape": 0, "size": 0, "position": 0, "both": 0} | ({"texture": 0} if ann.textures else {})
    n_obj = bg_hits = count_ok = 0
    for s, ds, b in zip(scenes, dets, bgs):
        found = {d.position: d for d in ds}
        count_ok += len(ds) == len(s.objects)
        bg_hits += b == s.background
        for o in s.objects:
            n_obj += 1
            d = found.get(o.position)
            if d is None:
                continue
            hits["position"] += 1
            hits["color"] += d.color == o.color
            hits["shape"] += d.shape == o.shape
            hits["size"] += d.size == o.size
            hits["both"] += (d.color == o.color) and (d.shape == o.shape)
            if ann.textures:
                hits["texture"] += d.texture == o.texture
    out = {f"{k}_accuracy": v / n_obj for k, v in hits.items()}
    out.update(background_accuracy=bg_hits / n, count_accuracy=count_ok / n, n_images=n, n_objects=n_obj)
    return out
