"""Configuration: load a config, check it against the JSON schema and the model, and answer the
workflow's per-site / per-dictionary questions.

- `schema`: the JSON schemas (generated from the settings classes), loading, defaults, messages
- `check`: `check`, every problem of a config before any job runs, and the effective config
- `jobs`: what the workflow derives from a checked config: instances, job params, shards
"""

from .check import budget_warnings, check, effective_config, model_config_info
from .jobs import (
    as_json,
    dictionary_instances,
    dictionary_sites,
    effective_dictionary,
    instance_config,
    interp_params,
    n_shards,
    replicate_name,
    shard_names,
    steering_params,
)
from .schema import (
    SCHEMA_PATH,
    ConfigError,
    apply_defaults,
    dictionaries_schema,
    dictionary_kinds,
    kind_schema,
    load_layered,
    load_schema,
    load_yaml,
    schema_text,
    section_schemas,
    write_schemas,
)

__all__ = [
    "SCHEMA_PATH",
    "ConfigError",
    "apply_defaults",
    "as_json",
    "budget_warnings",
    "check",
    "dictionaries_schema",
    "dictionary_instances",
    "dictionary_kinds",
    "dictionary_sites",
    "effective_config",
    "effective_dictionary",
    "instance_config",
    "interp_params",
    "kind_schema",
    "load_layered",
    "load_schema",
    "load_yaml",
    "model_config_info",
    "n_shards",
    "replicate_name",
    "schema_text",
    "section_schemas",
    "shard_names",
    "steering_params",
    "write_schemas",
]
