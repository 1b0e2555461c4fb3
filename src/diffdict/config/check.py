"""`check`: every problem of a config, before any job runs.

First the JSON schema, then what a schema cannot express: block indices against the configured
model's block counts, steps against the schedule, each dictionary kind's settings and the rules
between them, the sites a dictionary can be trained on, a training batch against the train
split, the interp split against the protocol's counts, pretrained dictionaries' widths."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ..sites import Site, validate_site
from .jobs import dictionary_sites, effective_dictionary, replicate_name
from .schema import ConfigError, apply_defaults, dictionary_kinds, kind_of, kind_schema, load_schema, schema_messages

# ---- model architecture (for index checks without loading weights) ----------------------


def model_config_info(model_cfg: dict, world_cfg: dict | None = None) -> dict:
    """`model.loading.info_from_config` of the configured model, from its config files only.

    A toy model whose folder does not exist yet (the workflow trains it) answers with the
    builder's configuration (``world.size`` overrides included)."""
    from ..model.loading import ModelFolderError, info_from_config, transformer_config_info

    try:
        info = transformer_config_info(model_cfg["path"])
    except ModelFolderError:
        if model_cfg["kind"] != "toy" or Path(model_cfg["path"]).exists():
            raise
        from ..world.pipeline import VAE_DEFAULTS, transformer_config

        size = (world_cfg or {}).get("size", {})
        info = info_from_config(
            transformer_config(**{k: v for k, v in size.items() if k in ("num_layers", "num_single_layers")})
        )
        info["vae_scale_factor"] = 2 ** (len(size.get("block_out_channels", VAE_DEFAULTS["block_out_channels"])) - 1)
    return info


def _check_dictionaries(config: dict) -> list[str]:
    errors = []
    kinds = dictionary_kinds()
    for name, d in config["dictionaries"].items():
        kind = d["kind"]
        if kind not in kinds:  # schema enum and package disagree: report, don't crash
            errors.append(f"config.dictionaries.{name}.kind: '{kind}' unknown; valid: {', '.join(kinds)}")
            continue
        n_rep = d.get("replicates", 1)
        if n_rep > 1 and not kind_of(kind).seeded:
            errors.append(
                f"config.dictionaries.{name}.replicates: kind '{kind}' has no seed (nothing in how it is built is "
                f"random), so replicates must be 1, not {n_rep}"
            )
        for r in range(1, n_rep):
            if replicate_name(name, r) in config["dictionaries"]:
                errors.append(
                    f"config.dictionaries.{name}.replicates: replicate {r} would be named "
                    f"'{replicate_name(name, r)}', which is another dictionary's name; rename one"
                )
        allowed = set(kinds[kind]) | {"kind", "sites", "replicates"}
        for key in sorted(set(d) - allowed):
            errors.append(
                f"config.dictionaries.{name}: unknown key '{key}' for kind '{kind}'; "
                f"valid keys: {', '.join(sorted(allowed))}"
            )
        # types and choices of the kind's settings, from its settings class (the one definition)
        known = {k: v for k, v in d.items() if k in kinds[kind]}
        typed = [
            m.replace("config", f"config.dictionaries.{name}", 1) for m in schema_messages(known, kind_schema(kind))
        ]
        errors += typed
        if not typed:  # the rules between settings (k <= n_features, ...) before any job runs, not in it
            try:
                kind_of(kind).settings(**known)
            except (TypeError, ValueError) as e:
                errors.append(f"config.dictionaries.{name}: {e}")
        for s in d.get("sites", []):
            if s not in config["sites"]:
                errors.append(
                    f"config.dictionaries.{name}.sites: unknown site '{s}'; valid: {', '.join(config['sites'])}"
                )
                continue
            place = config["sites"][s].get("place", "resid")
            if place not in kind_of(kind).places:
                need = "' or '".join(kind_of(kind).places)
                errors.append(
                    f"config.dictionaries.{name}: kind '{kind}' needs a site with place '{need}', "
                    f"but site '{s}' has place '{place}'"
                )
    return errors


def _check_pretrained(config: dict, info: dict) -> list[str]:
    """`pretrained` dictionaries: the file or folder is readable as its format and its d_model is
    the width of every site it is used at (`info`: the model's `model_config_info`)."""
    from ..interop import FORMATS, pretrained_shape

    errors = []
    widths = {"resid": info["d_model"], "mlp": info["mlp_hidden"]}
    for name, d in config["dictionaries"].items():
        if d["kind"] != "pretrained":
            continue
        where = f"config.dictionaries.{name}"
        fmt, path = d.get("format", "diffdict"), d.get("path")
        if fmt not in FORMATS:
            errors.append(f"{where}.format: unknown format '{fmt}'; valid: {', '.join(FORMATS)}")
            continue
        if not path:
            errors.append(f"{where}.path: required for kind 'pretrained' (a file or folder of format '{fmt}')")
            continue
        try:
            d_in, width, _ = pretrained_shape(path, fmt, d.get("k"))
        except (OSError, ValueError, KeyError) as e:
            errors.append(f"{where}: {e}")
            continue
        for s in dictionary_sites(config, name):
            sc = config["sites"].get(s)
            want = widths[sc.get("place", "resid")] if sc else None
            if want is not None and want != d_in:
                errors.append(
                    f"{where}: {path} reads d_model {d_in} ({width} features), but site '{s}' has d_model {want}"
                )
    return errors


def _tokens_per_image(model: dict, site: Site, info: dict) -> int:
    """Tokens one image gives a site at one step: its stream's length (the image-token grid or the
    T5 sequence), or `tokens_per_image` where the train split keeps fewer."""
    from ..model.loading import image_grid

    if site.stream == "txt":
        n = model["max_sequence_length"]
    else:
        vsf = info.get("vae_scale_factor", 8)  # diffusers' Flux VAE where a folder has no vae/config.json
        rows, cols = image_grid(model["height"], model["width"], vsf)
        n = rows * cols
    return min(n, site.tokens_per_image) if site.tokens_per_image else n


def _check_training_tokens(config: dict, info: dict) -> list[str]:
    """A dictionary's batch must fit in one epoch of its sites' train split: otherwise its training
    job fails after every generation and capture job has run (`dictionaries.data.rebatch`)."""
    errors = []
    n_images = config["prompts"]["splits"].get("train", 0)
    for name in config["dictionaries"]:
        batch = effective_dictionary(config, name).get("batch_size")
        if batch is None:  # kinds that read no training batches (random, neurons, pretrained)
            continue
        for s in dictionary_sites(config, name):
            site = Site.from_config(s, config["sites"][s])
            per_image, n_steps = _tokens_per_image(config["model"], site, info), len(site.steps)
            epoch = n_images * n_steps * per_image
            if batch > epoch:
                errors.append(
                    f"config.dictionaries.{name}.batch_size: {batch} tokens per batch, but one epoch of site '{s}' "
                    f"holds {epoch} (prompts.splits.train {n_images} images x {n_steps} steps x {per_image} "
                    f"tokens); valid: batch_size <= {epoch}, or more train prompts, steps or tokens_per_image"
                )
    return errors


def budget_warnings(config: dict, null_kind: str = "random") -> list[str]:
    """What a valid `config` will compare at another budget: at each site, an SAE whose k exceeds that of
    every random-direction dictionary there (`diffdict.budget`: random directions gain with every latent a
    token keeps, so the tables fail those comparisons, saying why). Warnings, not errors: the run is
    valid, and a warning before any job runs saves one that would be read against the wrong null."""
    from ..budget import at_one_budget

    out = []
    resolved = {n: effective_dictionary(config, n) for n in config["dictionaries"]}
    for s in config["sites"]:
        here = {n: d for n, d in resolved.items() if s in dictionary_sites(config, n)}
        nulls = {n: d["k"] for n, d in here.items() if d["kind"] == null_kind}
        if not nulls:
            continue
        top = max(nulls.values())
        for n, d in here.items():
            if kind_of(d["kind"]).sae and not at_one_budget(d["k"], top):
                out.append(
                    f"config.dictionaries.{n}: k {d['k']} at site '{s}', where random directions keep at most {top} "
                    f"latents per token ({', '.join(sorted(nulls))}): its comparisons with them are not at one "
                    f"budget, and the ground-truth checks fail them; add a `kind: {null_kind}` dictionary with "
                    f"k {d['k']} beside them (each method meets the one at its own budget: benchmarks/two_nulls.yaml)"
                )
    return out


def _check_interp_images(config: dict, interp: dict) -> list[str]:
    """The interp split must be large enough for any feature to be explained and judged."""
    from ..interp.protocol import DEFAULTS, min_interp_images

    c = {**DEFAULTS, **{k: v for k, v in interp.items() if k in DEFAULTS}}
    have, need = config["prompts"]["splits"]["interp"], min_interp_images(c)
    if have >= need:
        return []
    return [
        f"config.prompts.splits.interp: {have} images can explain no feature: the explainer needs "
        f"interp.n_explain = {c['n_explain']} images of the explanation subset (interp.explain_fraction = "
        f"{c['explain_fraction']} of the split) and the judge interp.n_pos + interp.n_neg = {c['n_pos']} + "
        f"{c['n_neg']} held-out ones (the rest); valid: interp >= {need}, or lower those counts"
    ]


def _check_stage_options(config: dict) -> list[str]:
    """interp / steering keys against the stages' own defaults (their single source of truth)."""
    from ..interp.run import InterpSettings
    from ..interp.run import resolve_config as interp_options
    from ..steering.stage import SteeringSettings
    from ..steering.stage import resolve_config as steering_options

    errors = []
    for section, cls in (("interp", InterpSettings), ("steering", SteeringSettings)):
        known = {k: v for k, v in config[section].items() if k in {f.name for f in dataclasses.fields(cls)}}
        errors += _section_messages(known, cls, f"config.{section}")
    explainers = config["interp"].get("explainers") or {}
    if not explainers:
        errors.append(
            "config.interp.explainers: give at least one, e.g. {annotation: {backend: annotation}} "
            "(backends: annotation, openai, transformers)"
        )
    for name, e in explainers.items():
        if e.get("backend") == "annotation" and config["model"]["kind"] != "toy":
            errors.append(
                f"config.interp.explainers.{name}: the annotation backend needs the shapes world "
                "(model.kind: toy); use openai or transformers"
            )
    interp = {k: v for k, v in config["interp"].items() if k != "explainers"}
    for section, resolve, value in (
        ("interp", interp_options, interp),
        ("steering", steering_options, config["steering"]),
    ):
        try:
            resolve(value)
        except ValueError as e:
            errors.append(f"config.{section}: {e}")
    if not any(e.startswith("config.interp") for e in errors):  # its counts are typed and valid
        errors += _check_interp_images(config, interp)
    split = config["steering"].get("split", "test")
    if split not in config["prompts"]["splits"]:
        errors.append(
            f"config.steering.split: unknown split '{split}'; valid: {', '.join(config['prompts']['splits'])}"
        )
    explainer = config["steering"].get("explainer")
    if explainer is not None and explainer not in explainers:
        errors.append(f"config.steering.explainer: unknown explainer '{explainer}'; valid: {', '.join(explainers)}")
    return errors


def _section_messages(value: dict, cls, where: str) -> list[str]:
    """Problems of one section against the schema generated from its settings class, each
    message starting with `where` (``config.interp``, ``config.sites.double1_img``)."""
    from ..settings import block_schema

    return [m.replace("config", where, 1) for m in schema_messages(value, block_schema(cls))]


def _typed_section(config: dict, section: str, cls, where: str | None = None) -> list[str]:
    """Check `config[section]` against the schema generated from its settings class and fill in
    the class's defaults (rule params carry the whole section, so leaving a default out of the
    config file reruns nothing)."""
    from ..settings import defaults

    value = config.get(section) or {}
    errors = _section_messages(value, cls, where or f"config.{section}")
    config[section] = {**defaults(cls), **value}
    return errors


def _check_world_textures(config: dict) -> list[str]:
    """World prompts must come from the world the toy was trained on: the texture world's words
    are unknown to a plain shapes-world toy's tokenizer, and its concepts to its annotator."""
    m, want = config["model"], bool(config["prompts"].get("textures", False))
    training = Path(m["path"]) / "training.json"
    if training.exists():
        has, where = bool(json.loads(training.read_text()).get("textures", False)), f"the toy model at {m['path']}"
    else:  # the workflow trains it from the world section
        has, where = bool((config.get("world") or {}).get("textures", False)), "config.world"
    if want == has:
        return []
    return [
        f"config.prompts.textures: {str(want).lower()}, but {where} is the "
        f"{'texture' if has else 'plain (texture-free) shapes'} world; set prompts.textures: {str(has).lower()}, "
        "or point model.path at a toy trained with world.textures to match"
    ]


def check(config: dict, schema_path: str | Path | None = None, check_model: bool = True) -> dict:
    """Validate `config`; return it with defaults filled. Raises ConfigError listing every problem."""
    schema = load_schema(schema_path)
    errors = schema_messages(config, schema)
    if errors:
        raise ConfigError(_format(errors))
    config = apply_defaults(config, schema)
    from ..model.settings import ModelSettings
    from ..prompts import PromptSettings
    from ..sites import SiteSettings
    from ..world.recipe import ToyRecipe

    errors += _typed_section(config, "model", ModelSettings)
    errors += _typed_section(config, "prompts", PromptSettings)
    for name in config["sites"]:
        errors += _typed_section(config["sites"], name, SiteSettings, where=f"config.sites.{name}")
    if config["model"]["kind"] == "toy" or config.get("world"):  # the world is the toy's recipe
        errors += _typed_section(config, "world", ToyRecipe)
    if errors:  # the checks below read these sections
        raise ConfigError(_format(errors))
    errors += _check_dictionaries(config)
    errors += _check_stage_options(config)
    m = config["model"]
    if config["prompts"]["source"] == "file":
        p = config["prompts"].get("path")
        if not p:
            errors.append("config.prompts.path: required when prompts.source is 'file'")
        elif not Path(p).exists():
            errors.append(f"config.prompts.path: prompt file '{p}' does not exist")
    elif m["kind"] != "toy":
        errors.append("config.prompts.source: 'world' prompts only fit the toy model; use 'file' for flux")
    else:
        errors += _check_world_textures(config)
    if check_model:
        try:
            info = model_config_info(m, config.get("world"))  # the model's config files only, read once
        except (FileNotFoundError, ValueError) as e:
            errors.append(f"config.model: {e}")
        else:
            for name, sc in config["sites"].items():
                site = Site.from_config(name, sc)
                errors += [
                    msg.replace(f"site '{name}': ", f"config.sites.{name}: ", 1)
                    for msg in validate_site(site, info["n_double"], info["n_single"], m["num_inference_steps"])
                ]
            errors += _check_pretrained(config, info)
            if not errors:  # the dictionaries and sites are valid: their training batches fit the data
                errors += _check_training_tokens(config, info)
    if errors:
        raise ConfigError(_format(errors))
    return config


def effective_config(config: dict) -> dict:
    """`check`ed config with every default filled in: the schema's, each dictionary's kind's and the
    interp and steering stages' (what `diffdict config --show-defaults` prints)."""
    from ..interp.run import resolve_config as interp_options
    from ..steering.stage import resolve_config as steering_options

    out = check(config)
    out["dictionaries"] = {
        name: {
            "kind": d["kind"],
            "replicates": d.get("replicates", 1),
            **dictionary_kinds()[d["kind"]],
            **{k: v for k, v in d.items() if k not in ("kind", "replicates")},
        }
        for name, d in out["dictionaries"].items()
    }
    explainers = out["interp"].get("explainers")
    out["interp"] = {
        **interp_options({k: v for k, v in out["interp"].items() if k != "explainers"}),
        "explainers": explainers,
    }
    out["steering"] = steering_options(out["steering"])
    return json.loads(json.dumps(out, default=list))  # tuples -> lists: plain YAML


def _format(errors: list[str]) -> str:
    head = "invalid configuration" + (f" ({len(errors)} problems)" if len(errors) > 1 else "")
    return head + ":\n  - " + "\n  - ".join(errors)
