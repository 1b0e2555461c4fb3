"""What the workflow derives from a checked config: the dictionary instances (replicates), the
canonical params of its jobs (a changed setting reruns exactly what it changes) and the shards."""

from __future__ import annotations

import json
import math
from typing import Any

from .schema import dictionary_kinds, kind_of, registry


def dictionary_sites(config: dict, dname: str) -> list[str]:
    """Sites a dictionary is trained on: its `sites:` list, else every site of fitting place."""
    d = config["dictionaries"][dname]
    if "sites" in d:
        return list(d["sites"])
    place = kind_of(d["kind"]).places[0]
    return [s for s, sc in config["sites"].items() if sc.get("place", "resid") == place]


def replicate_name(dname: str, r: int) -> str:
    """Replicate r of dictionary `dname`: r = 0 is the dictionary itself."""
    return dname if r == 0 else f"{dname}-r{r}"


def dictionary_instances(config: dict) -> dict[str, tuple[str, int]]:
    """Every dictionary the workflow trains: name -> (configured dictionary, replicate).

    ``replicates: N`` trains N copies of a dictionary with seeds seed, seed + 1, ...; replicate
    r > 0 is named ``{name}-r{r}``. The interpretation stage scores every replicate and pools
    their features, so a method's score includes the spread between training runs rather
    than one seed's draw; the other stages use replicate 0 only."""
    return {
        replicate_name(d, r): (d, r)
        for d, v in config["dictionaries"].items()
        for r in range(int(v.get("replicates", 1)))
    }


def instance_config(config: dict, name: str) -> dict:
    """The hyperparameters of dictionary instance `name` (`dictionary_instances`): its
    dictionary's, with the replicate's seed and without ``replicates``."""
    instances = dictionary_instances(config)
    if name not in instances:
        raise ValueError(f"no dictionary '{name}' in the config (valid: {', '.join(instances)})")
    dname, r = instances[name]
    out = {k: v for k, v in config["dictionaries"][dname].items() if k != "replicates"}
    if r:
        out["seed"] = out.get("seed", dictionary_kinds()[out["kind"]].get("seed", 0)) + r
    return out


# Settings that change how a dictionary is built but not what it is (logging cadence).
_NOT_RESULTS = ("log_every", "checkpoint_every")


def effective_dictionary(config: dict, name: str) -> dict:
    """`instance_config` with every default of its kind filled in, less logging cadence and the
    settings at their inert default (`settings.setting(inert=)`): the params of a training job, so
    that a changed default retrains what it changes and a new setting that changes nothing does not."""
    from ..settings import inert_at_default

    out = instance_config(config, name)
    kind = registry().get(out["kind"])
    merged = {**(kind.defaults if kind else {}), **out}
    merged = inert_at_default(kind.settings, merged) if kind else merged
    return {k: v for k, v in merged.items() if k not in _NOT_RESULTS or k in out}


# Interp settings that say how the protocol runs, not what it computes: not in a job's params.
_INTERP_RUNTIME = ("explainer", "judge", "cache_dir")


def interp_params(config: dict) -> dict:
    """The interp protocol's settings its jobs depend on: every default filled in (a changed default
    reruns), less the explainers (changing one does not re-encode or redraw cards), how it runs and
    the settings at their inert default (as `effective_dictionary`)."""
    from ..interp import run
    from ..settings import inert_at_default

    c = run.resolve_config({k: v for k, v in config["interp"].items() if k != "explainers"})
    return inert_at_default(run.InterpSettings, {k: v for k, v in c.items() if k not in _INTERP_RUNTIME})


def steering_params(config: dict) -> dict:
    """The steering stage's settings with every default filled in, less those at their inert default."""
    from ..settings import inert_at_default
    from ..steering import stage

    return inert_at_default(stage.SteeringSettings, stage.resolve_config(config["steering"]))


def n_shards(config: dict, split: str) -> int:
    return math.ceil(config["prompts"]["splits"][split] / config["prompts"]["shard_size"])


def shard_names(config: dict, split: str) -> list[str]:
    return [f"{i:03d}" for i in range(n_shards(config, split))]


def as_json(obj: Any) -> str:
    """Canonical JSON for rule params (sorted keys, so equal settings compare equal)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))
