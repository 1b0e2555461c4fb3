"""Typed settings and the kind registry: the generated schema is the committed one, schemas follow
the settings classes' types, `diffdict config --show-defaults` prints every default, and a new
kind registered in one module is usable everywhere (config check, build, defaults)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from typing import Literal

import pytest
import yaml

from diffdict import config as dcfg
from diffdict.dictionaries import build
from diffdict.dictionaries.baselines import RandomDirections
from diffdict.dictionaries.kinds import REGISTRY, FitInputs, Kind, kinds, register
from diffdict.dictionaries.synthetic import planted
from diffdict.settings import block_schema, check_literals, inert_at_default, setting

from workflow_utils import REPO, minimal_config


@pytest.mark.parametrize("name", list(dcfg.section_schemas()))
def test_committed_schemas_are_generated_from_the_settings_classes(name):
    committed = dcfg.SCHEMA_PATH.with_name(name).read_text()
    assert committed == dcfg.schema_text(dcfg.section_schemas()[name]), (
        f"workflow/schemas/{name} is stale: run `diffdict config --write-schema` and commit it"
    )


@dataclasses.dataclass
class _Demo:
    n: int = setting(3, "a count")
    lr: float | None = setting(None, "a rate; null: derived")
    mode: Literal["a", "b"] = setting("a", "a choice")
    betas: tuple[float, float] = setting((0.9, 0.99), "a pair")


def test_block_schema_types_defaults_and_docs():
    props = block_schema(_Demo)["properties"]
    assert props["n"] == {"type": "integer", "default": 3, "description": "a count"}
    assert props["lr"]["type"] == ["number", "null"] and props["mode"]["enum"] == ["a", "b"]
    assert props["betas"] == {
        "type": "array",
        "items": {"type": "number"},
        "minItems": 2,
        "maxItems": 2,
        "default": [0.9, 0.99],
        "description": "a pair",
    }

    @dataclasses.dataclass
    class Undocumented:
        x: int = 1

    with pytest.raises(TypeError, match=r"Undocumented.x has no doc"):
        block_schema(Undocumented)


def test_required_and_optional_settings():
    from diffdict.settings import OPTIONAL, REQUIRED, defaults

    @dataclasses.dataclass
    class Section:
        name: str = setting(REQUIRED, "must be given", pattern="^[a-z]+$")
        path: str = setting(OPTIONAL, "may be left out; no default")
        size: int = setting(2, "has a default", minimum=1)

    schema = block_schema(Section)
    assert schema["required"] == ["name"] and schema["properties"]["name"]["pattern"] == "^[a-z]+$"
    assert "default" not in schema["properties"]["name"] and "default" not in schema["properties"]["path"]
    assert schema["properties"]["size"] == {
        "type": "integer",
        "minimum": 1,
        "default": 2,
        "description": "has a default",
    }
    assert defaults(Section) == {"size": 2}  # filling defaults adds neither the required nor the optional key
    assert Section(name="a").path is None


def test_resolve_fills_defaults_and_names_the_valid_keys():
    from diffdict.settings import resolve
    from diffdict.world.recipe import ToyRecipe

    assert resolve(_Demo, {"n": 5}, "demo") == {"n": 5, "lr": None, "mode": "a", "betas": (0.9, 0.99)}
    with pytest.raises(
        ValueError, match=r"unknown demo config keys \['m'\]; valid keys: \['betas', 'lr', 'mode', 'n'\]"
    ):
        resolve(_Demo, {"m": 1}, "demo")
    assert ToyRecipe.from_config({"seed": 3}) == ToyRecipe(seed=3)
    with pytest.raises(ValueError, match=r"unknown world config keys \['train_step'\]"):
        ToyRecipe.from_config({"train_step": 5})


def test_default_config_sets_only_what_differs_from_the_defaults():
    """config/config.yaml restates no default: each default is written once, in its settings class."""
    from diffdict.interp.run import InterpSettings
    from diffdict.model.settings import ModelSettings
    from diffdict.prompts import PromptSettings
    from diffdict.settings import defaults
    from diffdict.sites import SiteSettings
    from diffdict.steering.stage import SteeringSettings
    from diffdict.world.recipe import ToyRecipe

    raw = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    restated = []

    def same(where, values, defaults_):
        restated.extend(f"{where}.{k}" for k, v in values.items() if k in defaults_ and defaults_[k] == v)

    for section, cls in [("model", ModelSettings), ("prompts", PromptSettings), ("world", ToyRecipe)]:
        same(section, raw.get(section) or {}, defaults(cls))
    for section, cls in [("interp", InterpSettings), ("steering", SteeringSettings)]:
        same(section, raw[section], defaults(cls))
    for name, site in raw["sites"].items():
        same(f"sites.{name}", site, defaults(SiteSettings))
    for name, d in raw["dictionaries"].items():
        same(f"dictionaries.{name}", d, {**kinds()[d["kind"]].defaults, "replicates": 1})
    schema = dcfg.load_schema()["properties"]
    for section in ("activations", "metrics"):
        props = schema[section]["properties"]
        same(section, raw.get(section) or {}, {k: p["default"] for k, p in props.items() if "default" in p})
    same("config", raw, {"results": schema["results"]["default"]})
    assert not restated, f"config/config.yaml restates defaults: {restated}"


def test_every_kind_documents_every_setting():
    for kind in kinds().values():
        block_schema(kind.settings)  # raises on a field without a doc


def test_show_defaults_prints_every_default_once(cli_env):
    r = subprocess.run(
        [sys.executable, "-m", "diffdict.cli", "config", "--show-defaults"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=cli_env,
        check=True,
    )
    shown = yaml.safe_load(r.stdout)
    sae = shown["dictionaries"]["sae"]
    assert sae["kind"] == "topk_sae" and sae["lr_warmup_steps"] == 50 and sae["n_features"] == 128  # default, set
    assert shown["steering"]["strengths"] and "n_pos" in shown["interp"]
    assert dcfg.check(shown)  # the effective config is itself a valid config


@dataclasses.dataclass
class _ConstantConfig:
    n_features: int = setting(4, "directions")
    k: int = setting(2, "kept per token")
    seed: int = setting(0, "direction seed")


def _fit_constant(cfg: _ConstantConfig, i: FitInputs):
    from diffdict.dictionaries.data import sample

    return RandomDirections(i.d_model, cfg.n_features, cfg.k, cfg.seed).fit(sample(i.batches, 100, i.site).x)


def test_a_kind_registered_in_one_module_works_everywhere():
    register(Kind("constant_demo", _ConstantConfig, _fit_constant, doc="a test kind", trained=False))
    try:
        p = planted(d=16, n_atoms=32, k=2, seed=0)
        d = build("constant_demo", {"n_features": 6}, p.factory(200, batch=100), 16)
        assert d.n_features == 6 and d.build_info["kind"] == "constant_demo"
        cfg = minimal_config()
        cfg["dictionaries"]["demo"] = {"kind": "constant_demo", "k": "two"}
        with pytest.raises(dcfg.ConfigError, match=r"config.dictionaries.demo.k: 'two' is not of type 'integer'"):
            dcfg.check(cfg)
        cfg["dictionaries"]["demo"]["k"] = 2
        assert dcfg.effective_dictionary(dcfg.check(cfg), "demo") == {
            "kind": "constant_demo",
            "n_features": 4,
            "k": 2,
            "seed": 0,
        }
    finally:
        REGISTRY.pop("constant_demo")
    assert "constant_demo" not in kinds()


@dataclasses.dataclass
class _ConstantConfigLater(_ConstantConfig):
    """The kind after gaining two settings: one that does what the code did before at its default
    (inert), one without that claim."""

    cap: int | None = setting(None, "a cap; null: none, as before the setting existed", inert=None)
    scale: float = setting(1.0, "a scale")


@pytest.mark.parametrize(
    "given, gained",
    [
        ({}, {"scale": 1.0}),  # the inert setting at its default is left out: its addition reruns nothing
        ({"cap": None}, {"scale": 1.0}),  # stated at that value, the same job
        ({"cap": 3}, {"cap": 3, "scale": 1.0}),  # any other value is a result setting
    ],
)
def test_a_setting_added_at_its_inert_default_keeps_the_params(given, gained):
    cfg = minimal_config()
    cfg["dictionaries"]["demo"] = {"kind": "constant_demo", "k": 2}
    params = {}
    for settings in (_ConstantConfig, _ConstantConfigLater):
        register(Kind("constant_demo", settings, _fit_constant, doc="a test kind", trained=False))
        try:
            if settings is _ConstantConfigLater:
                cfg["dictionaries"]["demo"].update(given)
            params[settings] = dcfg.effective_dictionary(dcfg.check(cfg), "demo")
        finally:
            REGISTRY.pop("constant_demo")
    assert params[_ConstantConfigLater] == {**params[_ConstantConfig], **gained}


def test_an_inert_value_that_is_not_the_default_is_a_result():
    """A default moved away from the inert value reruns: the params keep the setting either way."""

    @dataclasses.dataclass
    class Moved:
        cap: int | None = setting(8, "a cap whose default moved from null", inert=None)

    assert inert_at_default(Moved, {"cap": 8}) == {"cap": 8}
    assert inert_at_default(Moved, {"cap": None}) == {"cap": None}


def test_interp_and_steering_params_leave_out_settings_at_their_inert_default(monkeypatch):
    """The interp and steering stages' job params follow the same rule as a dictionary's: a setting added
    at its inert default reruns nothing; set to another value, it is in the params."""
    from diffdict.interp import run
    from diffdict.steering import stage

    cfg = dcfg.check(minimal_config())
    before = dcfg.interp_params(cfg), dcfg.steering_params(cfg)
    assert "seed" in before[0] and not {"explainer", "judge", "cache_dir", "explainers"} & set(before[0])
    assert before[1] == stage.resolve_config(cfg["steering"])

    @dataclasses.dataclass
    class InterpLater(run.InterpSettings):
        cap: int | None = setting(None, "a cap; null: none, as before the setting existed", inert=None)

    @dataclasses.dataclass
    class SteeringLater(stage.SteeringSettings):
        cap: int | None = setting(None, "a cap; null: none, as before the setting existed", inert=None)

    monkeypatch.setattr(run, "InterpSettings", InterpLater)
    monkeypatch.setattr(stage, "SteeringSettings", SteeringLater)
    assert (dcfg.interp_params(cfg), dcfg.steering_params(cfg)) == before
    cfg["interp"]["cap"] = cfg["steering"]["cap"] = 3
    assert (dcfg.interp_params(cfg), dcfg.steering_params(cfg)) == ({**before[0], "cap": 3}, {**before[1], "cap": 3})


Colour = Literal["red", "blue"]


@dataclasses.dataclass
class _Paint:
    colour: Colour = setting("red", "a Literal field, through an alias")
    coats: int = setting(1, "not a Literal: left to the schema")


def test_check_literals_names_the_field_and_its_choices():
    check_literals(_Paint("blue", coats=-1))
    with pytest.raises(ValueError, match=r"colour 'green' is not one of \['red', 'blue'\]"):
        check_literals(_Paint("green"))
