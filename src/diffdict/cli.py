"""Command line: one subcommand per workflow rule.

Rules pass their settings as canonical JSON (`--model '{...}'`), so each job sees exactly the
settings it depends on and Snakemake's params trigger reruns only what changed. Every
subcommand writes its outputs atomically.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from pathlib import Path

log = logging.getLogger("diffdict")


def _json(s: str) -> dict:
    return json.loads(s)


# ---- model and data -----------------------------------------------------------------------


def cmd_check_config(a):
    from .config import check, load_yaml

    cfg = load_yaml(a.config)
    check(cfg)
    print(f"{a.config}: valid")


def cmd_train_toy(a):
    from .world.train import train_toy

    world = a.world
    train_toy(a.out, seed=world.get("seed", 0), n_images=world.get("train_images", 6000),
              steps=world.get("train_steps", 3000), height=a.model["height"], width=a.model["width"])


def cmd_prompts(a):
    from .atomic import write_parquet
    from .prompts import prompt_table

    write_parquet(a.out, prompt_table(a.prompts, a.split))


def cmd_generate(a):
    import pandas as pd

    from .model import generate_shard, load_pipeline

    prompts = pd.read_parquet(a.prompts)
    prompts = prompts[prompts["shard"] == int(a.shard)]
    if prompts.empty:
        raise SystemExit(f"shard {a.shard} of {a.prompts} is empty")
    pipe = load_pipeline(a.model)
    generate_shard(pipe, prompts, a.model, a.out)


def cmd_capture(a):
    from .model import capture, load_pipeline
    from .sites import Site

    site = Site.from_config(a.site_name, a.site)
    pipe = load_pipeline(a.model)
    keep = site.tokens_per_image if a.split == "train" else None
    capture(pipe, a.shard_file, site, a.out, tokens_per_image=keep, seed=_shard_seed(a.shard_file))


def _shard_seed(path: str) -> int:
    """Token subsampling seed: fixed per shard, so reruns keep the same tokens."""
    import zlib

    return zlib.crc32(Path(path).stem.encode())


def cmd_merge(a):
    from .store import merge_stores

    merge_stores(a.parts, a.out)


# ---- dictionaries and metrics -------------------------------------------------------------


def cmd_train_dictionary(a):
    import torch

    from .dictionaries import build
    from .store import ActivationStore

    store = ActivationStore.open(a.train)
    hp = {k: v for k, v in a.dictionary.items() if k not in ("kind", "sites")}
    extra = {"site": a.site_name, **a.site}
    if a.dictionary["kind"] == "neurons":
        from .model import load_pipeline, mlp_out_weight
        from .sites import Site

        pipe = load_pipeline(a.model)
        extra["w_out"] = mlp_out_weight(pipe.transformer, Site.from_config(a.site_name, a.site))
    device = "cuda" if torch.cuda.is_available() and a.model.get("device", "auto") != "cpu" else "cpu"
    dictionary = build(
        a.dictionary["kind"], hp,
        batches_factory=lambda epoch, bs=hp.get("batch_size", 256): store.batches(
            bs, shuffle=True, seed=hp.get("seed", 0) + epoch),
        d_model=store.d_model, checkpoint_dir=Path(a.checkpoints), log_path=Path(a.log_csv),
        device=device, site_name=a.site_name, extra=extra,
    )
    dictionary.save(a.out, extra={"site": a.site_name, "site_config": a.site})


def cmd_reconstruction(a):
    from .atomic import write_json
    from .dictionaries import load_dictionary
    from .metrics.reconstruction import reconstruction_metrics
    from .store import ActivationStore

    d = load_dictionary(a.dictionary)
    store = ActivationStore.open(a.test)
    m = reconstruction_metrics(d, store.batches(4096, shuffle=False))
    write_json(a.out, {"site": a.site_name, "dict": a.dict_name, "kind": d.kind, **m})


def cmd_collect_reconstruction(a):
    import pandas as pd

    from .atomic import atomic_path

    rows = [json.loads(Path(p).read_text()) for p in a.inputs]
    df = pd.DataFrame(rows)
    with atomic_path(a.out) as tmp:
        df.to_csv(tmp, index=False)


# ---- figures ------------------------------------------------------------------------------


def cmd_figure(a):
    import pandas as pd

    from . import plots

    table = pd.read_csv(a.table) if a.table else None
    getattr(plots, f"plot_{a.name}")(table, a.out)


def cmd_collect_figures(a):
    from .atomic import atomic_path

    with atomic_path(a.out, is_dir=True) as tmp:
        for p in map(Path, a.inputs):
            for f in [p, p.with_suffix(".pdf")]:
                if f.exists():
                    shutil.copy2(f, tmp / f.name)


# ---- parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="diffdict", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name, fn, help):
        s = sub.add_parser(name, help=help, description=help)
        s.set_defaults(fn=fn)
        return s

    s = add("check-config", cmd_check_config, "validate a config file")
    s.add_argument("config")

    s = add("train-toy", cmd_train_toy, "train the shapes-world pipeline")
    s.add_argument("--world", type=_json, required=True)
    s.add_argument("--model", type=_json, required=True)
    s.add_argument("--out", required=True)

    s = add("prompts", cmd_prompts, "write one split's prompt table")
    s.add_argument("--prompts", type=_json, required=True)
    s.add_argument("--split", required=True)
    s.add_argument("--out", required=True)

    s = add("generate", cmd_generate, "generate one shard (images, trajectory, embeddings)")
    s.add_argument("--model", type=_json, required=True)
    s.add_argument("--prompts", required=True)
    s.add_argument("--shard", required=True)
    s.add_argument("--out", required=True)

    s = add("capture", cmd_capture, "capture a site's activations from one shard by replay")
    s.add_argument("--model", type=_json, required=True)
    s.add_argument("--site-name", required=True)
    s.add_argument("--site", type=_json, required=True)
    s.add_argument("--split", required=True)
    s.add_argument("--shard-file", required=True)
    s.add_argument("--out", required=True)

    s = add("merge", cmd_merge, "merge shard activation stores")
    s.add_argument("--out", required=True)
    s.add_argument("parts", nargs="+")

    s = add("train-dictionary", cmd_train_dictionary, "train/build one dictionary on one site")
    s.add_argument("--model", type=_json, required=True)
    s.add_argument("--site-name", required=True)
    s.add_argument("--site", type=_json, required=True)
    s.add_argument("--dictionary", type=_json, required=True)
    s.add_argument("--train", required=True)
    s.add_argument("--checkpoints", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--log-csv", required=True)

    s = add("reconstruction", cmd_reconstruction, "held-out reconstruction metrics")
    s.add_argument("--dictionary", required=True)
    s.add_argument("--test", required=True)
    s.add_argument("--site-name", required=True)
    s.add_argument("--dict-name", required=True)
    s.add_argument("--out", required=True)

    s = add("collect-reconstruction", cmd_collect_reconstruction, "tidy table of metrics")
    s.add_argument("--kinds", type=_json, default={})
    s.add_argument("--out", required=True)
    s.add_argument("inputs", nargs="+")

    s = add("figure", cmd_figure, "draw one figure")
    s.add_argument("name")
    s.add_argument("--table")
    s.add_argument("--out", required=True)

    s = add("collect-figures", cmd_collect_figures, "copy figures (PNG+PDF) into one folder")
    s.add_argument("--out", required=True)
    s.add_argument("inputs", nargs="+")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from .config import ConfigError

    try:
        args.fn(args)
    except ConfigError as e:
        print(f"diffdict: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
