"""Feature cards: a feature's top explanation images, mid-quantile images and held-out
positives, each with its activation heatmap (one colour scale per card)."""

from __future__ import annotations

import numpy as np

from . import render
from .protocol import FeatureTask


def card_pairs(task: FeatureTask) -> list[tuple[int, int]]:
    return [(task.feature, p) for p in (*task.explain, *task.mid, *task.positives)]


def make_card(task: FeatureTask, images, heat: dict, title: str, size: int = 160) -> np.ndarray:
    """uint8 RGB card; ``images[pid]`` -> [H, W, 3], ``heat[(feature, pid)]`` -> [gh, gw]."""

    def panels(pids):
        return [render.overlay(images[p], heat[(task.feature, p)], task.vmax, size) for p in pids]

    rows = [
        ("top activations (shown to the explainer)", panels(task.explain)),
        ("mid-quantile examples", panels(task.mid)),
        ("held-out positives (judged)", panels(task.positives)),
    ]
    return render.grid_image(rows, title)
