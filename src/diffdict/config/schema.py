"""The config's JSON schemas: loading them, filling their defaults, messages that name the valid
choices (raw jsonschema messages do not), and the schemas generated from the settings classes
(`diffdict config --write-schema` writes them under workflow/schemas/)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """A configuration problem; the message names the offending key and the valid choices."""


def load_yaml(path: str | Path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f) or {}


def load_layered(paths) -> dict:
    """Config files merged in order, each over the ones before, as snakemake merges several
    `--configfile` values (its own `update_config`: nested sections merge, lists are replaced)."""
    from snakemake.utils import update_config

    config: dict = {}
    for path in paths:
        update_config(config, load_yaml(path))
    return config


def load_schema(schema_path: str | Path | None = None) -> dict:
    path = Path(schema_path) if schema_path else SCHEMA_PATH
    if not path.exists():
        raise ConfigError(f"config schema not found at {path}")
    return load_yaml(path)


def _where(path) -> str:
    return "config" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in path)


def schema_messages(config: dict, schema: dict) -> list[str]:
    import jsonschema

    messages = []
    validator = jsonschema.Draft202012Validator(schema)
    for err in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))):
        where = _where(err.absolute_path)
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            extra = sorted(set(err.instance) - set(allowed))
            for key in extra:
                messages.append(f"{where}: unknown key '{key}'; valid keys: {', '.join(allowed)}")
        elif err.validator == "enum":
            messages.append(
                f"{where}: {err.instance!r} is not a valid choice; valid: {', '.join(map(str, err.validator_value))}"
            )
        elif err.validator == "required":
            messages.append(f"{where}: {err.message}")
        else:
            messages.append(f"{where}: {err.message}")
    return messages


def apply_defaults(config: dict, schema: dict) -> dict:
    """Fill schema defaults into a copy of `config` (objects and additionalProperties maps)."""
    config = copy.deepcopy(config)

    def fill(node: Any, sch: dict) -> None:
        if not isinstance(node, dict) or sch.get("type") != "object":
            return
        for key, sub in sch.get("properties", {}).items():
            if key not in node and "default" in sub:
                node[key] = copy.deepcopy(sub["default"])
            if key in node:
                fill(node[key], sub)
        if isinstance(sch.get("additionalProperties"), dict):
            for key, value in node.items():
                if key not in sch.get("properties", {}):
                    fill(value, sch["additionalProperties"])

    fill(config, schema)
    return config


def registry() -> dict:
    from ..dictionaries.kinds import kinds

    return kinds()


def dictionary_kinds() -> dict[str, dict]:
    """kind -> {hyperparameter: default}, from the kind registry (each kind's settings class)."""
    return {name: k.defaults for name, k in registry().items()}


def kind_of(name: str):
    return registry()[name]


def kind_schema(name: str) -> dict:
    """JSON schema of one kind's settings, generated from its settings class."""
    from ..settings import block_schema

    k = kind_of(name)
    return block_schema(k.settings, k.doc)


def dictionaries_schema() -> dict:
    """JSON schema of a `dictionaries:` entry: the common keys, then each kind's own settings.
    Generated from the kind registry; `workflow/schemas/dictionaries.schema.yaml` is this, written
    by `diffdict config --write-schema` (a test fails when it is stale)."""
    from ..dictionaries.kinds import kinds

    common = {
        "kind": {"enum": list(kinds()), "description": "dictionary kind (diffdict.dictionaries.kinds)"},
        "sites": {
            "type": "array",
            "items": {"type": "string"},
            "description": "sites to train on (default: every site whose place fits the kind)",
        },
        "replicates": {
            "type": "integer",
            "minimum": 1,
            "default": 1,
            "description": "runs with seeds seed, seed+1, ...; interpretation pools their features",
        },
    }
    branches = []
    for name in kinds():
        own = kind_schema(name)
        branches.append(
            {
                "if": {"properties": {"kind": {"const": name}}},
                "then": {
                    "description": own["description"],
                    "properties": {**copy.deepcopy(common), **own["properties"]},
                    "additionalProperties": False,
                },
            }
        )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "one entry of config.dictionaries",
        "type": "object",
        "required": ["kind"],
        "properties": copy.deepcopy(common),
        "allOf": branches,
    }


def section_schemas() -> dict[str, dict]:
    """Generated schemas, by file name under workflow/schemas/: the dictionary kinds, and the
    `model`, `prompts`, `sites`, `interp` (less `explainers`), `steering` and `world` sections,
    each from its settings classes."""
    from ..interp.run import InterpSettings
    from ..model.settings import ModelSettings
    from ..prompts import PromptSettings
    from ..settings import block_schema
    from ..sites import SiteSettings
    from ..steering.stage import SteeringSettings
    from ..world.recipe import ToyRecipe

    head = {"$schema": "https://json-schema.org/draft/2020-12/schema"}
    return {
        "model.schema.yaml": {**head, "title": "config.model", **block_schema(ModelSettings, "the model section")},
        "prompts.schema.yaml": {**head, "title": "config.prompts", **block_schema(PromptSettings, "the prompts")},
        "sites.schema.yaml": {
            **head,
            "title": "one entry of config.sites",
            **block_schema(SiteSettings, "where activations are read, steered and spliced"),
        },
        "dictionaries.schema.yaml": dictionaries_schema(),
        "interp.schema.yaml": {
            **head,
            "title": "config.interp, less explainers",
            **block_schema(InterpSettings, "the interpretation protocol and stage"),
        },
        "steering.schema.yaml": {**head, "title": "config.steering", **block_schema(SteeringSettings, "steering")},
        "world.schema.yaml": {
            **head,
            "title": "config.world",
            **block_schema(ToyRecipe, "the toy model's training recipe (diffdict.world.recipe)"),
        },
    }


GENERATED = "# Generated from diffdict's settings classes by `diffdict config --write-schema`; do not edit.\n"


def schema_text(schema: dict) -> str:
    return GENERATED + yaml.safe_dump(schema, sort_keys=False, width=110)


def write_schemas() -> list[Path]:
    from ..atomic import atomic_path

    out = []
    for name, schema in section_schemas().items():
        with atomic_path(SCHEMA_PATH.with_name(name)) as tmp:
            tmp.write_text(schema_text(schema))
        out.append(SCHEMA_PATH.with_name(name))
    return out
