"""The model adapter: loading, hook sites, sharded generation, replay capture, interventions."""

from .capture import capture, execution_device, replay_inputs, run_to_site, select_tokens
from .generate import encode_prompts, generate_images, generate_shard, read_shard
from .hooks import CallState, SiteError, StopForward, check_site, record_site, site_block, site_hook
from .intervene import mean_token_norm, splice, steer
from .loading import (
    ModelFolderError,
    check_model_folder,
    image_grid,
    info_from_config,
    load_pipeline,
    model_info,
    resolve_device,
    transformer_config_info,
)
from .weights import mlp_out_weight

__all__ = [
    "CallState",
    "ModelFolderError",
    "SiteError",
    "StopForward",
    "capture",
    "check_model_folder",
    "check_site",
    "encode_prompts",
    "execution_device",
    "generate_images",
    "generate_shard",
    "image_grid",
    "info_from_config",
    "load_pipeline",
    "mean_token_norm",
    "mlp_out_weight",
    "model_info",
    "read_shard",
    "record_site",
    "replay_inputs",
    "resolve_device",
    "run_to_site",
    "select_tokens",
    "site_block",
    "site_hook",
    "splice",
    "steer",
    "transformer_config_info",
]
