"""NF4 quantisation of a transformer's linear layers with bitsandbytes.

diffusers' bitsandbytes loader refuses to run without CUDA, but bitsandbytes (>= 0.45) quantises
``Linear4bit`` weights on CPU too. So we load the weights in a float dtype, swap the linear layers
for ``bnb.nn.Linear4bit`` and quantise each weight on the target device: one code path for a tiny
model in CPU tests and for FLUX.1 on a GPU (peak GPU memory = the 4-bit weights).

We swap the layers ourselves rather than with diffusers' `replace_with_bnb_linear`: that helper
matches `modules_to_not_convert` against each child's *local* name, so skipping the final
``proj_out`` would also skip every single-stream block's ``proj_out`` (a quarter of the weights).
"""

from __future__ import annotations

import torch

# The final projection to latent channels is tiny and precision-sensitive (diffusers keeps the
# model's last module unquantised by default too).
DEFAULT_SKIP = ("proj_out",)
# bitsandbytes' packed CPU kernel (taken on CPUs with AVX512-BF16) repacks a weight in blocks
# of this many output rows and reshapes its absmax to [out, in / blocksize]: it fails (an
# assertion, a reshape error) at the first forward of a layer whose shape does not fit.
CPU_PACK_BLOCK = 32


def packed_cpu_path_ok(in_features: int, out_features: int, blocksize: int = 64) -> bool:
    """Whether bitsandbytes' packed AVX512-BF16 CPU kernel can take a layer of this shape."""
    return out_features % CPU_PACK_BLOCK == 0 and in_features % blocksize == 0


def quantize_nf4(
    model: torch.nn.Module,
    compute_dtype: torch.dtype = torch.bfloat16,
    device: str | torch.device = "cpu",
    skip: tuple[str, ...] = DEFAULT_SKIP,
    double_quant: bool = True,
) -> torch.nn.Module:
    """Replace every ``nn.Linear`` of `model` (except `skip`: full module names) by NF4 ``Linear4bit``.

    Weights are quantised on `device`; biases and the remaining parameters are cast to
    `compute_dtype` and moved there as well. Returns the same model object.
    """
    try:
        import bitsandbytes as bnb
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError("precision 'nf4' needs bitsandbytes: pip install 'diffdict[nf4]'") from e

    device = torch.device(device)
    # names only: holding the modules would keep every float weight alive until the end
    targets = [n for n, m in model.named_modules() if type(m) is torch.nn.Linear and n not in set(skip)]
    for name in targets:
        src = model.get_submodule(name)
        parent_name, _, child = name.rpartition(".")
        q = bnb.nn.Linear4bit(
            src.in_features,
            src.out_features,
            bias=src.bias is not None,
            compute_dtype=compute_dtype,
            compress_statistics=double_quant,
            quant_type="nf4",
            device="meta",
        )
        # Params4bit quantises when first moved to a real device; one layer at a time keeps
        # peak memory at the float model plus one layer
        q.weight = bnb.nn.Params4bit(
            src.weight.data.to(compute_dtype),
            requires_grad=False,
            quant_type="nf4",
            compress_statistics=double_quant,
        ).to(device)
        if src.bias is not None:
            q.bias = torch.nn.Parameter(src.bias.data.to(device, compute_dtype), requires_grad=False)
        q.requires_grad_(False)
        if not packed_cpu_path_ok(src.in_features, src.out_features, q.weight.quant_state.blocksize):
            # the generic dequantise-and-matmul path instead of an assertion at the first forward
            q.support_avx512bf16_for_cpu = False
        setattr(model.get_submodule(parent_name) if parent_name else model, child, q)
        del src, q
    # everything else (norms, embedders, skipped linears) in the compute dtype on the device
    for p in model.parameters():
        if not isinstance(p, bnb.nn.Params4bit) and (p.device != device or p.dtype != compute_dtype):
            p.data = p.data.to(device, compute_dtype)
    for b in model.buffers():
        if b.is_floating_point():
            b.data = b.data.to(device, compute_dtype)
    return model


def linear_weight_bytes(model: torch.nn.Module) -> dict[str, int]:
    """Bytes held by linear-layer weights, split into quantised (4-bit data + quant state) and float."""
    import bitsandbytes as bnb

    q = f = 0
    for m in model.modules():
        if isinstance(m, bnb.nn.Linear4bit):
            w = m.weight
            q += w.data.numel() * w.data.element_size()
            qs = w.quant_state
            if qs is not None:
                q += qs.absmax.numel() * qs.absmax.element_size() + qs.code.numel() * qs.code.element_size()
                if qs.state2 is not None:
                    q += qs.state2.absmax.numel() * qs.state2.absmax.element_size()
                    q += qs.state2.code.numel() * qs.state2.code.element_size()
        elif isinstance(m, torch.nn.Linear):
            f += m.weight.numel() * m.weight.element_size()
    return {"quantized": q, "float": f}
