"""The `transformers` backend on a tiny randomly initialised LLaVA built from a config and saved
to a local folder, loaded back through AutoProcessor / AutoModelForImageTextToText offline."""

import numpy as np
import pytest
import torch

from diffdict.interp.backends import Example, Explanation, make_backend

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_vlm(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    words = ["<unk>", "<pad>", "<s>", "</s>", "<image>", "user", "assistant", "system", ":"] + [
        f"w{i}" for i in range(40)
    ]
    vocab = {w: i for i, w in enumerate(words)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    template = (
        "{% for m in messages %}{{ m['role'] }} : {% if m['content'] is string %}{{ m['content'] }}"
        "{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }} "
        "{% endif %}{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}assistant : {% endif %}"
    )
    proc = LlavaProcessor(
        image_processor=CLIPImageProcessorPil(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}),
        tokenizer=tok,
        patch_size=8,
        vision_feature_select_strategy="default",
        chat_template=template,
        num_additional_image_tokens=1,
    )
    vc = CLIPVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=16, patch_size=8
    )
    tc = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=3,
    )
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(
        LlavaConfig(
            vision_config=vc,
            text_config=tc,
            image_token_index=vocab["<image>"],
            vision_feature_layer=-1,
            vision_feature_select_strategy="default",
        )
    )
    path = tmp_path_factory.mktemp("tiny-llava")
    model.save_pretrained(path)
    proc.save_pretrained(path)
    return path


def test_local_vlm_explains_judges_and_caches(tiny_vlm, tmp_path):
    b = make_backend(
        {"backend": "transformers", "model_path": str(tiny_vlm), "max_new_tokens": 4}, cache_dir=tmp_path / "cache"
    )
    img = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    e = b.explain(1, [Example(1, img, np.ones((2, 2)), size=16), Example(2, img, np.zeros((2, 2)), size=16)])
    assert e.ok and e.text and e.usage.requests == 1 and 0 < e.usage.completion_tokens <= 4
    j = b.judge(Explanation(1, "w1 w2"), Example(3, img, size=16))
    # a random model answers words, not a score: recorded as a parse failure, never dropped
    assert j.ok or j.error.startswith("parse:")
    again = b.judge(Explanation(1, "w1 w2"), Example(3, img, size=16))
    assert again.usage.cached == 1 and again.usage.requests == 0 and again.score == j.score
