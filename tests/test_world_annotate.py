"""Annotator: segmentation, geometry rules, token masks, save/load; the committed one's accuracy."""

from pathlib import Path

import numpy as np
import pytest
import torch

from diffdict.world import CONCEPTS, sample_scenes
from diffdict.world.annotate import Annotator, ObjectNet, coverage, evaluate_annotator
from diffdict.world.render import render_batch

MODEL = Path(__file__).resolve().parents[1] / "resources" / "toy-shapes"


@pytest.fixture(scope="module")
def world():
    scenes, _, _ = sample_scenes(80, 11)
    images, masks = render_batch(scenes)
    return scenes, images, masks


def test_segmentation_recovers_rendered_masks(world):
    scenes, images, masks = world
    ann = Annotator(net=ObjectNet())
    seg, bgs = ann.segment(images)
    for s, ms, true, b in zip(scenes, seg, masks, bgs):
        assert b == s.background
        assert len(ms) == len(s.objects)
        for m, t in zip(ms, true):  # both in reading order
            assert np.array_equal(m, t)


def test_token_masks_follow_object_coverage(world):
    scenes, images, masks = world
    torch.manual_seed(0)
    ann = Annotator(net=ObjectNet())
    tm = ann.token_masks(images, grid=(8, 8))
    assert tm.shape == (len(images), 8, 8, len(CONCEPTS)) and tm.dtype == bool
    idx = {c: i for i, c in enumerate(CONCEPTS)}
    for i, (s, true) in enumerate(zip(scenes, masks)):
        covered = np.zeros((8, 8), bool)
        for o, m in zip(s.objects, true):
            cov = coverage(m, (8, 8)) >= ann.token_threshold
            covered |= cov
            # geometry concepts come from rules, so they are exact even with an untrained net
            assert (tm[i, :, :, idx[f"position={o.position}"]] >= cov).all()
            assert (tm[i, :, :, idx[f"size={o.size}"]] >= cov).all()
        assert np.array_equal(tm[i, :, :, idx[f"background={s.background}"]], ~covered)
        others = [idx[f"background={b}"] for b in ("dark", "gray", "light") if b != s.background]
        assert not tm[i, :, :, others].any()


def test_save_load_round_trip(tmp_path, world):
    _, images, _ = world
    torch.manual_seed(0)
    ann = Annotator(net=ObjectNet(), report={"x": 1})
    ann.save(tmp_path / "annotator")
    back = Annotator.load(tmp_path)  # a model folder containing annotator/
    assert back.report == {"x": 1} and back.concepts == ann.concepts
    assert [sorted(a) for a in back.annotate(images[:10])] == [sorted(a) for a in ann.annotate(images[:10])]


@pytest.mark.skipif(not (MODEL / "annotator").exists(), reason="trained toy model not present")
def test_committed_annotator_is_accurate_on_heldout_renderings():
    ann = Annotator.load(MODEL)
    acc = evaluate_annotator(ann, n=150, seed=99)
    assert acc["color_accuracy"] >= 0.95 and acc["shape_accuracy"] >= 0.95
    assert acc["count_accuracy"] >= 0.95
