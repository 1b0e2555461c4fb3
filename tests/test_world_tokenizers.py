"""Word-level tokenizers: every vocabulary word is one token and captions round-trip."""

import numpy as np

from diffdict.world import sample_scenes
from diffdict.world.grammar import vocabulary
from diffdict.world.tokenizers import SPECIALS, build_tokenizer


def test_vocabulary_round_trips_one_token_per_word():
    t5, clip = build_tokenizer("t5"), build_tokenizer("clip")
    vocab = vocabulary()
    assert len(vocab) == len(set(vocab))
    unk = t5.convert_tokens_to_ids("<unk>")
    for w in vocab:
        ids = t5(w).input_ids
        assert len(ids) == 2 and ids[0] != unk and ids[1] == t5.eos_token_id
        assert t5.decode(ids, skip_special_tokens=True) == w
        assert clip(w).input_ids == ids  # CLIP: no BOS, so 15 words + EOS fit 16 positions
    all_ids = [t5.convert_tokens_to_ids(w) for w in vocab]
    assert len(set(all_ids)) == len(vocab) and min(all_ids) == len(SPECIALS)


def test_captions_round_trip_and_pad_to_16(tmp_path):
    _, captions, _ = sample_scenes(200, 0)
    t5 = build_tokenizer("t5")
    t5.save_pretrained(tmp_path / "t5")
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(tmp_path / "t5")
    enc = loaded(captions, padding="max_length", max_length=16, truncation=True)
    for text, ids in zip(captions, enc.input_ids):
        assert len(ids) == 16
        assert t5.convert_tokens_to_ids("<unk>") not in ids
        assert loaded.decode(ids, skip_special_tokens=True) == text
        n = len(text.split())
        assert ids[n] == loaded.eos_token_id and all(i == loaded.pad_token_id for i in ids[n + 1 :])
    assert np.array_equal(enc.input_ids, t5(captions, padding="max_length", max_length=16).input_ids)
    clip = build_tokenizer("clip")
    assert all(clip.eos_token_id in ids for ids in clip(captions, max_length=16, truncation=True).input_ids)
