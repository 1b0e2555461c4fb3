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


def test_texture_rule_names_rendered_and_softened_textures():
    """The texture rule reads the lattice cells' brightness: exact on renderings, and still right
    when a decoder softens the contrast (dark cells at 0.75 of the colour instead of 0.6; 0.8 is
    the midway point between plain and a pattern)."""
    from diffdict.world.annotate import texture_of
    from diffdict.world.render import texture_cells
    from diffdict.world.scene import TEXTURES, world_concepts

    scenes, _, _ = sample_scenes(60, 4, textures=True)
    images, masks = render_batch(scenes)
    truth = [(i, m, o.texture) for i, s in enumerate(scenes) for m, o in zip(masks[i], s.objects)]
    assert all(texture_of(images[i], m) == t for i, m, t in truth)
    soft = images.astype(float)
    for i, m, t in truth:
        dark = m & texture_cells(t, 64)
        soft[i][dark] = soft[i][dark] * 0.75 / 0.6
    assert all(texture_of(soft[i], m) == t for i, m, t in truth)
    # the texture world's annotator names them, and token masks carry them on the object's tokens
    ann = Annotator(net=ObjectNet(), concepts=world_concepts(textures=True))
    dets, _ = ann.detect(images)
    assert [d.texture for ds in dets for d in ds] == [t for _, _, t in truth]
    tm = ann.token_masks(images)
    k = {c: j for j, c in enumerate(ann.concepts)}
    for i, s in enumerate(scenes):
        on = {t: tm[i, :, :, k[f"texture={t}"]].any() for t in TEXTURES}
        assert {t for t, v in on.items() if v} == {o.texture for o in s.objects}
    assert Annotator(net=ObjectNet()).detect(images[:3])[0][0][0].texture is None  # the default world's
