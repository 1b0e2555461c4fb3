"""Shapes world: scenes, renderer, grammar and the prompts table."""

import json

import numpy as np
import pytest

from diffdict.world import CONCEPTS, prompts_table, sample_scenes
from diffdict.world.grammar import MAX_WORDS, caption
from diffdict.world.render import render
from diffdict.world.scene import BACKGROUNDS, COLORS, POSITIONS, SHAPES, SIZE_EXTENT, SIZES, Scene, sample_scene


def test_world_has_required_variety():
    assert len(SHAPES) >= 4 and len(COLORS) >= 6 and len(SIZES) >= 2
    assert len(POSITIONS) >= 4 and len(BACKGROUNDS) >= 3
    assert len(CONCEPTS) == len(set(CONCEPTS)) == 6 + 4 + 2 + 4 + 3


@pytest.mark.parametrize("seed", range(3))
def test_masks_and_labels_agree_with_pixels(seed):
    scenes, _, _ = sample_scenes(60, seed)
    for s in scenes:
        img, masks = render(s, 64)
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8
        assert masks.shape == (len(s.objects), 64, 64)
        assert not (masks.sum(0) > 1).any()  # objects never overlap
        bg = ~masks.any(0)
        bg_rgb = np.unique(img[bg], axis=0)
        assert len(bg_rgb) == 1 and np.abs(bg_rgb[0].astype(int) - BACKGROUNDS[s.background]).max() <= 6
        for o, m in zip(s.objects, masks):
            assert m.sum() > 40  # visible
            rgb = np.unique(img[m], axis=0)
            assert len(rgb) == 1 and np.abs(rgb[0].astype(int) - COLORS[o.color]).max() <= 12
            ys, xs = np.nonzero(m)  # the centroid lies in the labelled quadrant
            quad = POSITIONS[2 * int(ys.mean() >= 32) + int(xs.mean() >= 32)]
            assert quad == o.position
            extent = max(np.ptp(ys), np.ptp(xs)) + 1
            assert (extent / 64 > SIZE_EXTENT) == (o.size == "large")


def test_shapes_differ_in_silhouette():
    from diffdict.world.scene import Obj

    ms = {sh: render(Scene((Obj(sh, "red", "large", "top-left"),), "dark"), 64)[1][0] for sh in SHAPES}
    for a in SHAPES:
        for b in SHAPES:
            if a < b:
                assert (ms[a] ^ ms[b]).sum() > 40, (a, b)


def test_captions_name_every_attribute_and_fit_16_tokens():
    rng = np.random.default_rng(0)
    from diffdict.world.grammar import POSITION_WORDS, SIZE_WORDS

    for _ in range(500):
        s = sample_scene(rng)
        text = caption(s, rng)
        words = text.split()
        assert len(words) <= MAX_WORDS
        assert s.background in words
        for o in s.objects:
            assert o.color in words and o.shape in words
            assert set(SIZE_WORDS[o.size]) & set(words)
            assert set(POSITION_WORDS[o.position]) & set(words)


def test_prompts_table_schema_determinism_and_split_independence():
    a = prompts_table(50, seed=3, start_id=100)
    assert list(a.columns) == ["prompt_id", "prompt", "seed", "concepts", "scene"]
    assert a["prompt_id"].tolist() == list(range(100, 150))
    assert a["prompt_id"].dtype == np.int64 and a["seed"].dtype == np.int64
    assert a.equals(prompts_table(50, seed=3, start_id=100))
    for concepts, sc in zip(a["concepts"], a["scene"]):
        s = Scene.from_json(sc)
        assert concepts == s.concepts() and set(concepts) <= set(CONCEPTS)
        assert json.loads(s.to_json()) == json.loads(sc)
    b = prompts_table(50, seed=4, start_id=150)
    assert not set(a["seed"]) & set(b["seed"])
    assert (a["prompt"].values != b["prompt"].values).mean() > 0.9  # independent draws


def test_training_stream_differs_from_prompt_stream():
    from diffdict.world import PROMPTS_DOMAIN, TRAIN_DOMAIN

    _, p, _ = sample_scenes(30, 0, PROMPTS_DOMAIN)
    _, t, _ = sample_scenes(30, 0, TRAIN_DOMAIN)
    assert sum(x == y for x, y in zip(p, t)) < 3


# ---- the texture world -------------------------------------------------------------------
def test_texture_cells_are_the_documented_lattice():
    from diffdict.world.render import texture_cells

    assert not texture_cells("plain", 64).any() and not texture_cells(None, 64).any()
    st, ch, do = (texture_cells(t, 64) for t in ("striped", "checked", "dotted"))
    assert st[4:8].all() and not st[0:4].any() and st[12, 0]  # rows 4-7, 12-15, ... are dark
    assert ch[0, 4] and ch[4, 0] and not ch[0, 0] and not ch[4, 4]
    assert do[4, 4] and not do[0, 4] and not do[4, 0] and not do[0, 0]
    assert (st.mean(), ch.mean(), do.mean()) == (0.5, 0.5, 0.25)
    # every 8x8-pixel token holds the whole pattern: all tokens look alike
    for cells in (st, ch, do):
        tokens = cells.reshape(8, 8, 8, 8).transpose(0, 2, 1, 3).reshape(64, 8, 8)
        assert (tokens == tokens[0]).all()


def test_textured_objects_keep_their_masks_and_darken_the_lattice_cells():
    from dataclasses import replace

    from diffdict.world.render import texture_cells
    from diffdict.world.scene import TEXTURE_DARK, TEXTURES

    scenes, _, _ = sample_scenes(40, 2, textures=True)
    assert {o.texture for s in scenes for o in s.objects} == set(TEXTURES)
    for s in scenes:
        img, masks = render(s, 64)
        plain = Scene(tuple(replace(o, texture=None) for o in s.objects), s.background, s.bg_shade)
        img0, masks0 = render(plain, 64)
        assert np.array_equal(masks, masks0)  # a texture changes pixels, never the silhouette
        for o, m in zip(s.objects, masks):
            dark = m & texture_cells(o.texture, 64)
            assert np.array_equal(img[m & ~dark], img0[m & ~dark])
            want = np.clip(np.round(TEXTURE_DARK * np.array(COLORS[o.color])) + o.shade, 0, 255)
            assert (img[dark] == want).all()


def test_default_world_is_unchanged_by_the_texture_option():
    """The default world's streams, captions and scene JSON are what they were (no texture drawn,
    named or stored), so its committed prompt tables and toy are still described by the code."""
    a = prompts_table(30, seed=5)
    assert all("texture" not in sc for sc in a["scene"]) and not any("texture" in c for c in a["concepts"].sum())
    t = prompts_table(30, seed=5, textures=True)
    for sc, concepts, text in zip(t["scene"], t["concepts"], t["prompt"]):
        s = Scene.from_json(sc)
        assert concepts == s.concepts() and Scene.from_json(s.to_json()) == s
        assert all(o.texture in text.split() and f"texture={o.texture}" in concepts for o in s.objects)


def test_texture_captions_name_every_attribute_and_fit_16_tokens():
    from diffdict.world.grammar import vocabulary
    from diffdict.world.scene import TEXTURES
    from diffdict.world.tokenizers import build_tokenizer

    scenes, captions, _ = sample_scenes(1000, 0, p_two=0.65, textures=True)
    tok = build_tokenizer("t5", 16, vocabulary(textures=True))
    unk = tok.convert_tokens_to_ids("<unk>")
    for s, text in zip(scenes, captions):
        words = text.split()
        assert len(words) <= MAX_WORDS and s.background in words
        for o in s.objects:
            assert {o.texture, o.color, o.shape} <= set(words)
        assert unk not in tok(text).input_ids
    assert set(TEXTURES) <= set(vocabulary(textures=True)) and not set(TEXTURES) & set(vocabulary())


def test_unknown_shape_or_texture_names_the_valid_choices():
    from diffdict.world.render import shape_mask, texture_cells

    with pytest.raises(ValueError, match="unknown texture 'wavy'; valid: plain, striped, checked, dotted"):
        texture_cells("wavy", 64)
    with pytest.raises(ValueError, match="unknown shape 'star'; valid: circle, square, triangle, cross"):
        shape_mask("star", 32, 32, 8, 64)
