"""Commands of the model and data stages: config, toy training, prompts, generation, capture."""

from __future__ import annotations

from pathlib import Path

from ..cpu_math import CPU_MATHS
from .args import json_arg, model_and_site, model_arg

LAYERED = "each file over the ones before it, as snakemake merges several --configfile values"


def cmd_check_config(a):
    import sys

    from ..config import budget_warnings, check, load_layered

    config = check(load_layered(a.configs))
    for w in budget_warnings(config):
        print(f"warning: {w}", file=sys.stderr)
    print(f"{' + '.join(a.configs)}: valid")


def cmd_config(a):
    import yaml

    from ..config import effective_config, load_layered, write_schemas

    if a.write_schema:
        print("\n".join(map(str, write_schemas())))
    if a.show_defaults:
        print(yaml.safe_dump(effective_config(load_layered(a.configfile)), sort_keys=False), end="")


def cmd_cpu_env(a):
    import shlex

    from ..cpu_math import cpu_math_env

    for var, value in cpu_math_env(a.mode).items():
        print(f"export {var}={shlex.quote(value)}")


def cmd_train_toy(a):
    from ..world.recipe import ToyRecipe
    from ..world.train import train_toy

    train_toy(a.out, ToyRecipe.from_config(a.world))


def cmd_prompts(a):
    from ..atomic import write_parquet
    from ..prompts import prompt_table

    write_parquet(a.out, prompt_table(a.prompts, a.split))


def cmd_generate(a):
    import pandas as pd

    from ..model import generate_shard, load_pipeline

    prompts = pd.read_parquet(a.prompts)
    prompts = prompts[prompts["shard"] == a.shard_index]
    if prompts.empty:
        raise SystemExit(f"shard {a.shard_index} of {a.prompts} is empty")
    pipe = load_pipeline(a.model)
    generate_shard(pipe, prompts, a.model, a.out)


def cmd_capture(a):
    from ..model import capture, load_pipeline
    from ..sites import Site

    site = Site.from_config(a.site_name, a.site)
    pipe = load_pipeline(a.model)
    keep = site.tokens_per_image if a.split == "train" else None
    capture(pipe, a.shard, site, a.out, tokens_per_image=keep, seed=_shard_seed(a.shard), split=a.split)


def _shard_seed(path: str) -> int:
    """Token subsampling seed: fixed per shard, so reruns keep the same tokens."""
    import zlib

    return zlib.crc32(Path(path).stem.encode())


def cmd_merge(a):
    from ..store import merge_stores

    merge_stores(a.parts, a.out)


def register(add) -> None:
    """Add this module's subcommands (`add(name, fn, help)` returns the subparser)."""
    s = add("check-config", cmd_check_config, "validate a config file, or several layered in order")
    s.add_argument("configs", nargs="+", metavar="config", help=LAYERED)

    s = add("config", cmd_config, "the effective configuration, every default filled in; the generated schema")
    s.add_argument("--configfile", nargs="+", default=["config/config.yaml"], help=LAYERED)
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument("--show-defaults", action="store_true", help="print the config with every default it leaves out")
    what.add_argument(
        "--write-schema",
        action="store_true",
        help="regenerate workflow/schemas/{dictionaries,model,prompts,sites,interp,steering,world}.schema.yaml "
        "from the settings classes",
    )

    s = add(
        "cpu-env",
        cmd_cpu_env,
        "print the environment that holds the CPU math libraries to a model.cpu_math mode, for scripts run "
        'outside the workflow: eval "$(diffdict cpu-env portable)"',
    )
    s.add_argument("mode", choices=CPU_MATHS, help="native prints nothing")

    s = add("train-toy", cmd_train_toy, "train the shapes-world pipeline")
    s.add_argument("--world", type=json_arg, required=True)
    model_arg(s)
    s.add_argument("--out", required=True)

    s = add("prompts", cmd_prompts, "write one split's prompt table")
    s.add_argument("--prompts", type=json_arg, required=True)
    s.add_argument("--split", required=True)
    s.add_argument("--out", required=True)

    s = add("generate", cmd_generate, "generate one shard (images, trajectory, embeddings)")
    model_arg(s)
    s.add_argument("--prompts", required=True)
    s.add_argument("--shard-index", type=int, required=True, help="the prompts' shard to generate (0, 1, ...)")
    s.add_argument("--out", required=True)

    s = add("capture", cmd_capture, "capture a site's activations from one shard by replay")
    model_and_site(s)
    s.add_argument("--split", required=True)
    s.add_argument("--shard", required=True, help="a generation shard (.safetensors)")
    s.add_argument("--out", required=True)

    s = add("merge", cmd_merge, "merge shard activation stores")
    s.add_argument("--out", required=True)
    s.add_argument("parts", nargs="+")
