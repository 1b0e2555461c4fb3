"""A local vision-language model through `transformers` (for clusters without internet).

Loads ``AutoProcessor`` + ``AutoModelForImageTextToText`` from a local folder (offline) and
answers with greedy decoding, so answers are deterministic and cacheable like the endpoint's.
Requests run one at a time (one model in memory).
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from .cache import sha256
from .chat import ChatBackend, RequestFailed

DTYPES = ("auto", "float32", "bfloat16", "float16")


class TransformersBackend(ChatBackend):
    name = "transformers"

    def __init__(
        self,
        model_path: str,
        device: str = "cpu",
        dtype: str = "auto",
        max_new_tokens: int = 64,
        judge_heatmap: bool = False,
        cache_dir=None,
        model=None,
        processor=None,
    ):
        super().__init__(cache_dir)
        if dtype not in DTYPES:
            raise ValueError(f"transformers backend: dtype '{dtype}' is not one of {list(DTYPES)}")
        if model is None and not Path(model_path).is_dir():
            raise ValueError(f"transformers backend: model_path {model_path!r} is not a local folder")
        self.model_path, self.device, self.dtype = str(model_path), device, dtype
        self.max_new_tokens = int(max_new_tokens)
        self.judge_heatmap = bool(judge_heatmap)
        self._model, self._processor = model, processor  # injectable (tests, shared models)

    @property
    def model_name(self) -> str:
        # folder name + hash of its config: two different models in same-named folders never share cache entries
        cfg = Path(self.model_path) / "config.json"
        return Path(self.model_path).name + (":" + sha256(cfg.read_bytes())[:16] if cfg.is_file() else "")

    @property
    def params(self) -> dict:
        return {"max_new_tokens": self.max_new_tokens, "greedy": True}

    def _load(self):
        if self._model is None:
            import torch
            from transformers import AutoModelForImageTextToText, AutoProcessor

            dtype = "auto" if self.dtype == "auto" else getattr(torch, self.dtype)
            self._processor = AutoProcessor.from_pretrained(self.model_path, local_files_only=True)
            self._model = (
                AutoModelForImageTextToText.from_pretrained(self.model_path, local_files_only=True, dtype=dtype)
                .to(self.device)
                .eval()
            )
        return self._model, self._processor

    @staticmethod
    def _render(messages: list[dict]) -> list[dict]:
        out = []
        for m in messages:
            content = [
                {"type": "image", "image": Image.open(io.BytesIO(p["png"])).convert("RGB")}
                if "png" in p
                else {"type": "text", "text": p["text"]}
                for p in m["parts"]
            ]
            out.append({"role": m["role"], "content": content})
        return out

    def _complete(self, messages):
        import torch

        model, processor = self._load()
        try:
            inputs = processor.apply_chat_template(
                self._render(messages), add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
            )
            inputs = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in inputs.items()}
            n_in = int(inputs["input_ids"].shape[1])
            with torch.no_grad():
                out = model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False)
            new = out[:, n_in:]
            text = processor.batch_decode(new, skip_special_tokens=True)[0]
        except Exception as e:  # a generation error fails this item, not the run
            raise RequestFailed(f"{type(e).__name__}: {e}", 1) from e
        return text, n_in, int(new.shape[1]), 1
