"""Tiny randomly initialised Flux pipelines built from configs (tests, benchmarks, smoke runs).

Real diffusers/transformers classes with toy sizes: a word-level tokenizer, one-layer CLIP and
T5 encoders, a two-level VAE (8x smaller than FLUX's) and a FluxTransformer2DModel with a few
blocks. Nothing is downloaded.
"""

from __future__ import annotations

import torch

WORDS = "a an the red green blue yellow circle square triangle star on dark light background small big".split()


def tiny_transformer_config(**over) -> dict:
    cfg = dict(
        patch_size=1,
        in_channels=16,
        num_layers=2,
        num_single_layers=2,
        attention_head_dim=8,
        num_attention_heads=2,
        joint_attention_dim=32,
        pooled_projection_dim=16,
        guidance_embeds=False,
    )
    cfg.update(over)
    if "axes_dims_rope" not in cfg:  # rotary axes must sum to the head dim (all even)
        hd = cfg["attention_head_dim"]
        a = 2 * (hd // 8)
        b = 2 * ((hd - a) // 4)
        cfg["axes_dims_rope"] = (a, b, hd - a - b)
    return cfg


def tiny_transformer(seed: int = 0, **over):
    from diffusers import FluxTransformer2DModel

    torch.manual_seed(seed)
    return FluxTransformer2DModel(**tiny_transformer_config(**over)).eval()


def _tokenizer(max_length: int, eos: bool):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "</s>", "<unk>"]
    vocab = {w: i for i, w in enumerate(specials + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if eos:
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=max_length
    )


def tiny_pipeline(seed: int = 0, guidance_embeds: bool = False, **transformer_over):
    """A complete FluxPipeline (text encoders, tokenizers, VAE, scheduler) with random weights.

    The VAE downsamples 2x and latents are packed 2x2, so one image token covers 4x4 pixels:
    32x32 px -> 8x8 = 64 image tokens.
    """
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    n_vocab = 3 + len(WORDS)
    clip = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=n_vocab,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=77,
            projection_dim=16,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=1,
        )
    ).eval()
    t5 = T5EncoderModel(
        T5Config(
            vocab_size=n_vocab,
            d_model=32,
            d_kv=8,
            d_ff=64,
            num_layers=1,
            num_heads=2,
            pad_token_id=0,
            eos_token_id=1,
            decoder_start_token_id=0,
        )
    ).eval()
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 8),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=4,
        sample_size=32,
        scaling_factor=1.0,
        shift_factor=0.0,
        use_quant_conv=False,
        use_post_quant_conv=False,
    ).eval()
    transformer = tiny_transformer(seed, guidance_embeds=guidance_embeds, **transformer_over)
    return FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=1.0),
        vae=vae,
        text_encoder=clip,
        tokenizer=_tokenizer(77, eos=False),
        text_encoder_2=t5,
        tokenizer_2=_tokenizer(512, eos=True),
        transformer=transformer,
    )
