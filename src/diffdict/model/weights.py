"""Read weights at a site (dequantising NF4 layers), e.g. MLP output directions for neurons."""

from __future__ import annotations

import torch

from ..sites import Site
from .hooks import site_block


def linear_weight(layer: torch.nn.Module) -> torch.Tensor:
    """float32 weight [out, in] of an ``nn.Linear`` or a bitsandbytes ``Linear4bit``."""
    w = layer.weight
    if getattr(w, "quant_state", None) is not None:
        import bitsandbytes.functional as F

        return F.dequantize_4bit(w.data, w.quant_state).float().reshape(layer.out_features, layer.in_features)
    return w.detach().float()


def mlp_out_weight(transformer, site: Site) -> torch.Tensor:
    """Output projection of the site's MLP neurons, [d_model, mlp_hidden] float32 on CPU:
    neuron j writes ``W[:, j]`` into the residual stream of the site's stream.

    Double blocks: ``ff.net[2]`` (img) / ``ff_context.net[2]`` (txt). Single blocks: the MLP
    columns of ``proj_out`` (its input is ``cat([attention, mlp])``). The block's gate
    (adaLN, per sample and step) scales this output and is not included."""
    if site.place != "mlp":
        raise ValueError(f"site '{site.name}' has place '{site.place}'; MLP neurons need place 'mlp'")
    transformer = getattr(transformer, "transformer", transformer)
    block = site_block(transformer, site)
    if site.block == "double":
        return linear_weight((block.ff if site.stream == "img" else block.ff_context).net[2]).cpu()
    d = block.proj_out.out_features
    return linear_weight(block.proj_out)[:, d:].cpu()
