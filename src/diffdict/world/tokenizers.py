"""Word-level tokenizers built from the world's vocabulary, as real `transformers` tokenizers.

One word = one token (WordLevel model, whitespace split), so token positions map to caption
words and every caption round-trips exactly. Both save/load with ``save_pretrained`` /
``from_pretrained`` as a ``tokenizer.json`` and need no network or BPE merges.
"""

from __future__ import annotations

from .grammar import vocabulary

PAD, EOS, UNK, BOS = "<pad>", "</s>", "<unk>", "<s>"
SPECIALS = (PAD, EOS, UNK, BOS)  # ids 0..3 in this order


def vocab_ids(words: list[str] | None = None) -> dict[str, int]:
    words = vocabulary() if words is None else words
    return {w: i for i, w in enumerate(list(SPECIALS) + [w for w in words if w not in SPECIALS])}


def build_tokenizer(kind: str, max_length: int = 16, words: list[str] | None = None):
    """``kind="clip"``: ``words </s>`` (CLIP pools the hidden state at the first EOS; no BOS, so
    a 15-word caption plus EOS fits 16 positions and the EOS is never truncated away);
    ``kind="t5"``: ``words </s>`` like T5. Padding id 0 on the right."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = vocab_ids(words)
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    ids = {s: vocab[s] for s in SPECIALS}
    if kind in ("clip", "t5"):
        single = f"$A {EOS}"
    else:
        raise ValueError(f"unknown tokenizer kind '{kind}'; valid: clip, t5")
    tok.post_processor = processors.TemplateProcessing(single=single, special_tokens=[(BOS, ids[BOS]), (EOS, ids[EOS])])
    from tokenizers import decoders

    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with spaces
    kw = dict(pad_token=PAD, eos_token=EOS, unk_token=UNK, model_max_length=max_length, padding_side="right")
    if kind == "clip":
        kw["bos_token"] = BOS
    return PreTrainedTokenizerFast(tokenizer_object=tok, **kw)
