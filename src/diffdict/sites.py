"""Sites: where in the transformer activations are read, steered or spliced.

A site names a block (double-stream ``transformer_blocks[i]`` or single-stream
``single_transformer_blocks[i]``), a stream (``img`` or ``txt`` tokens), a place (``resid``:
the block's output; ``mlp``: the feed-forward hidden activation after GELU, for the neuron
baseline) and the denoising steps to read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal, get_args

from .settings import REQUIRED, defaults, setting

Block = Literal["double", "single"]
Stream = Literal["img", "txt"]
Place = Literal["resid", "mlp"]
BLOCK_KINDS, STREAMS, PLACES = get_args(Block), get_args(Stream), get_args(Place)


@dataclass(frozen=True)
class SiteSettings:
    """One entry of the `sites` config section (its name is the key)."""

    block: Block = setting(REQUIRED, "double-stream or single-stream block")
    index: int = setting(REQUIRED, "the block's index (0-based)", minimum=0)
    stream: Stream = setting("img", "image or text tokens")
    place: Place = setting(
        "resid", "resid: the block's output; mlp: the feed-forward hidden activation after GELU (neurons)"
    )
    steps: list[int] = setting(
        [0], "denoising steps read (0-based)", minItems=1, uniqueItems=True, items={"type": "integer", "minimum": 0}
    )
    tokens_per_image: int | None = setting(
        None, "tokens kept per image and step in the train split (seeded); null: all", minimum=1
    )


SITE_DEFAULTS = defaults(SiteSettings)


@dataclass(frozen=True)
class Site:
    name: str
    block: str  # "double" | "single"
    index: int
    stream: str = SITE_DEFAULTS["stream"]
    place: str = SITE_DEFAULTS["place"]
    steps: tuple[int, ...] = tuple(SITE_DEFAULTS["steps"])
    tokens_per_image: int | None = SITE_DEFAULTS["tokens_per_image"]
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_config(cls, name: str, cfg: dict) -> Site:
        cfg = {**SITE_DEFAULTS, **cfg}
        known = set(SITE_DEFAULTS) | {"block", "index"}
        return cls(
            name=name,
            block=cfg["block"],
            index=int(cfg["index"]),
            stream=cfg["stream"],
            place=cfg["place"],
            steps=tuple(int(s) for s in cfg["steps"]),
            tokens_per_image=cfg["tokens_per_image"],
            extra={k: v for k, v in cfg.items() if k not in known},
        )

    @property
    def module_path(self) -> str:
        """Attribute path of the block inside a FluxTransformer2DModel."""
        blocks = "transformer_blocks" if self.block == "double" else "single_transformer_blocks"
        return f"{blocks}.{self.index}"

    @property
    def hook_name(self) -> str:
        """The hooked tensor in diffusers' module names (``model.hooks`` has the table), for
        exported SAEs: ``transformer_blocks.1.out.img``, ``transformer_blocks.1.ff.net.2.in``,
        ``single_transformer_blocks.0.act_mlp.out.txt``."""
        if self.place == "resid":
            return f"{self.module_path}.out.{self.stream}"
        if self.block == "double":
            return f"{self.module_path}.{'ff' if self.stream == 'img' else 'ff_context'}.net.2.in"
        return f"{self.module_path}.act_mlp.out.{self.stream}"

    def depth(self, n_double: int) -> int:
        """0-based position of this site's block in execution order (double blocks run first)."""
        return self.index if self.block == "double" else n_double + self.index

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("extra")
        d["steps"] = list(self.steps)
        return d

    def to_config(self) -> dict:
        """The site's `sites:` entry (`SiteSettings` keys; the name is the entry's key)."""
        d = self.to_dict()
        d.pop("name")
        return d


def validate_site(site: Site, n_double: int, n_single: int, n_steps: int) -> list[str]:
    """Semantic checks the JSON schema cannot express; returns error messages (empty: valid)."""
    errors = []
    n = {"double": n_double, "single": n_single}.get(site.block)
    if n is None:
        errors.append(f"site '{site.name}': block '{site.block}' is not one of {list(BLOCK_KINDS)}")
    elif not 0 <= site.index < n:
        errors.append(
            f"site '{site.name}': {site.block} block index {site.index} does not exist; "
            f"the model has {n} {site.block}-stream blocks (valid: 0..{n - 1})"
        )
    if site.stream not in STREAMS:
        errors.append(f"site '{site.name}': stream '{site.stream}' is not one of {list(STREAMS)}")
    if site.place not in PLACES:
        errors.append(f"site '{site.name}': place '{site.place}' is not one of {list(PLACES)}")
    bad = [s for s in site.steps if not 0 <= s < n_steps]
    if bad:
        errors.append(
            f"site '{site.name}': steps {bad} are outside the schedule of {n_steps} "
            f"denoising steps (valid: 0..{n_steps - 1})"
        )
    return errors
