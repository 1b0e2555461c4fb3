"""Profiles name real rules, and model rules get their GPU resources from the Flux configs."""

import subprocess

import pytest
import yaml

from workflow_utils import REPO, snakemake_command


@pytest.fixture(scope="module")
def rules(cli_env) -> set[str]:
    r = subprocess.run(
        snakemake_command("--list-rules", workdir=REPO),
        capture_output=True,
        text=True,
        env=cli_env,
        check=True,
    )
    return {line.split()[0] for line in r.stdout.splitlines() if line.strip()}


@pytest.mark.parametrize("profile", sorted(p.parent.name for p in (REPO / "profiles").glob("*/config.yaml")))
def test_every_rule_a_profile_names_exists(profile, rules):
    cfg = yaml.safe_load((REPO / "profiles" / profile / "config.yaml").read_text())
    named = set(cfg.get("set-resources", {})) | set(cfg.get("set-threads", {}))
    assert named <= rules, f"profiles/{profile} names rules that do not exist: {sorted(named - rules)}"


def test_slurm_profile_covers_every_model_rule(rules):
    cfg = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    model_rules = {"generate", "capture", "train_dictionary", "spliced_generation", "steer"}
    assert model_rules <= rules
    for rule in model_rules:
        res = cfg["set-resources"].get(rule, {})
        assert res.get("slurm_partition") and res.get("cpus_per_task", 0) > cfg["default-resources"]["cpus_per_task"], (
            rule
        )
