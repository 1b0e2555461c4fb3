"""Every command the README, the Snakefile header, the config headers and the profiles show is run
(or dry-run) here exactly as written, in a fresh folder laid out like a clone of the repository.

Dry run means the shown command with `-n` appended (snakemake) or `make -n -B` (make: the full
recipe, then its snakemake line dry-run). Commands that need the network or a GPU server are
listed in EXTERNAL with the reason; a command shown anywhere that this file does not know fails
the test, so a new command in the docs cannot go untested.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from workflow_utils import REPO

EXTERNAL = {  # shown for the user to run; they download weights or serve a VLM on a GPU
    "huggingface-cli download black-forest-labs/FLUX.1-schnell --local-dir /data/flux-schnell": "34 GB download",
    "vllm serve Qwen/Qwen2.5-VL-7B-Instruct --port 8000 --limit-mm-per-prompt image=8": "serves a VLM on a GPU",
    "snakemake --unlock": "run by tests/test_workflow.py::test_kill_at_any_moment_then_the_readme_command",
    "snakemake --report results/report/workflow.zip": "run by tests/test_workflow.py::test_report_archive",
    "snakemake --report": "the same command, named in the layout",
}
SETUP = "sudo scripts/slurm-single-node.sh"
PLACEHOLDERS = {"diffdict check-config FILE": "diffdict check-config config/config.yaml"}


def _readme_commands(text: str) -> list[str]:
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        cmds += [
            line.split("  #")[0].strip()
            for line in block.splitlines()
            if line.strip() and not line.lstrip().startswith("#")
        ]
    cmds += re.findall(r"`((?:snakemake|make|diffdict|pip) [^`]*)`", text)
    return cmds


def _header_commands(path: Path) -> list[str]:
    """`#   snakemake ...` lines in a file's leading comment block."""
    cmds = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        m = re.match(r"#\s+((?:snakemake|make|diffdict) .*?)(\s{2,}#.*)?$", line)
        if m:
            cmds.append(m.group(1).strip())
    return cmds


def shown_commands() -> list[tuple[str, str]]:
    shown = [("README.md", c) for c in _readme_commands((REPO / "README.md").read_text())]
    for path in [
        REPO / "Snakefile",
        *sorted((REPO / "config").glob("*.yaml")),
        *sorted((REPO / "profiles").glob("*/config.yaml")),
    ]:
        shown += [(str(path.relative_to(REPO)), c) for c in _header_commands(path)]
    return list(dict.fromkeys(shown))


@pytest.fixture
def clone(tmp_path, cli_env) -> Path:
    """A folder laid out like a fresh clone: the repository's files without its results."""
    root = tmp_path / "clone"
    root.mkdir()
    for entry in REPO.iterdir():
        if entry.name in (".git", ".snakemake", "results", ".pytest_cache", "config", "Snakefile"):
            continue
        (root / entry.name).symlink_to(entry)
    shutil.copytree(REPO / "config", root / "config")  # edited by the documented set-up steps
    shutil.copy(REPO / "Snakefile", root / "Snakefile")  # a copy, so the workflow's base is the clone
    return root


def flux_skeleton(root: Path, transformer: dict) -> Path:
    """A diffusers FLUX folder with real configs and empty weight files: enough to plan a run."""
    (root / "transformer").mkdir(parents=True)
    (root / "transformer/config.json").write_text(json.dumps(transformer))
    (root / "vae").mkdir()
    (root / "vae/config.json").write_text(json.dumps({"block_out_channels": [128, 256, 512, 512]}))
    index = {
        "_class_name": "FluxPipeline",
        "transformer": ["diffusers", "FluxTransformer2DModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }
    (root / "model_index.json").write_text(json.dumps(index))
    for comp in ("transformer", "vae"):
        (root / comp / "diffusion_pytorch_model.safetensors").touch()
    return root


def setup_flux(clone: Path, config_name: str, tmp_path: Path):
    """The README's set-up for a Flux config: model.path set to the downloaded folder, prompts file present."""
    cfg_path = clone / "config" / config_name
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["model"]["path"] = str(
        flux_skeleton(
            tmp_path / "weights",
            {
                "num_layers": 19,
                "num_single_layers": 38,
                "num_attention_heads": 24,
                "attention_head_dim": 128,
                "in_channels": 64,
                "joint_attention_dim": 4096,
                "pooled_projection_dim": 768,
                "guidance_embeds": "dev" in config_name,
            },
        )
    )
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    prompts = clone / cfg["prompts"]["path"]
    prompts.parent.mkdir(parents=True, exist_ok=True)
    n = sum(cfg["prompts"]["splits"].values())
    pd.DataFrame({cfg["prompts"]["column"]: [f"a photo of thing {i}" for i in range(n)]}).to_parquet(prompts)


def _trained_sae(path: Path) -> None:
    """A TopK SAE saved where a run of the default config saves one, with the site it records."""
    from diffdict.dictionaries import build
    from diffdict.dictionaries.synthetic import planted

    site = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["sites"][path.parent.parent.name]
    d = build(
        "topk_sae",
        {"n_features": 128, "k": 8, "batch_size": 64, "tokens": 640},
        planted(64, 128, 4).factory(640, batch=64),
        64,
        progress=False,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    d.save(path, extra={**d.build_info, "site": path.parent.parent.name, "site_config": site})


def run_in(clone: Path, args: list[str], env: dict) -> subprocess.CompletedProcess:
    r = subprocess.run(args, cwd=clone, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, f"{shlex.join(args)} failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}"
    return r


def dry_run_snakemake(clone: Path, cmd: str, env: dict, tmp_path: Path) -> str:
    args = shlex.split(cmd)
    if "--configfile" in args:
        cfg = Path(args[args.index("--configfile") + 1]).name
        if cfg.startswith("flux"):
            setup_flux(clone, cfg, tmp_path)
    r = run_in(clone, [*args, "-n"], env)
    out = r.stdout + r.stderr
    assert re.search(r"^\s*(local)?rule train_dictionary:", out, re.M), out[-3000:]
    return out


@pytest.mark.parametrize("source,cmd", shown_commands(), ids=lambda v: v if "/" in v or "." in v else v[:60])
def test_shown_command_runs(source, cmd, clone, cli_env, tmp_path):
    cmd = PLACEHOLDERS.get(cmd, cmd)
    env = cli_env
    if cmd in EXTERNAL:
        pytest.skip(f"{cmd!r} in {source}: {EXTERNAL[cmd]}")
    word = cmd.split()[0]
    if cmd == SETUP:  # root, packages and daemons: only where CI asks for a real cluster
        if not os.environ.get("DIFFDICT_REQUIRE_SLURM"):
            pytest.skip(f"{cmd!r} starts SLURM daemons as root; .ci/run runs it (DIFFDICT_REQUIRE_SLURM)")
        run_in(clone, shlex.split(cmd)[1:] if os.geteuid() == 0 else shlex.split(cmd), env)
    elif cmd == "snakemake --lint":  # plans nothing: it runs, and finds nothing to complain about
        run_in(clone, shlex.split(cmd), env)
    elif word == "snakemake":
        dry_run_snakemake(clone, cmd, env, tmp_path)
    elif word == "make":
        out = run_in(clone, ["make", "-n", "-B", *shlex.split(cmd)[1:]], env).stdout
        if "TORCH=" in cmd:  # the GPU build the command asks for is what the venv recipe installs
            torch = re.search(r"TORCH='([^']*)'", cmd).group(1)
            assert f"pip install -q {torch}" in out, out
        target = shlex.split(cmd)[1]
        runs = [line.split("snakemake", 1)[1] for line in out.splitlines() if re.search(r"/snakemake\b", line)]
        if target == "figures":  # the snakemake command it runs plans the whole run
            dry_run_snakemake(clone, "snakemake" + runs[-1], env, tmp_path)
        elif target == "report":  # the command test_report_archive runs on a complete run
            assert shlex.split(runs[-1])[-2:] == ["--report", "results/report/workflow.zip"], runs
        elif target == "test":
            assert any("pytest" in line for line in out.splitlines()), out
    elif word == "diffdict":
        if cmd.startswith("diffdict export "):  # the dictionary it names, as a run leaves it
            _trained_sae(clone / shlex.split(cmd)[2])
        run_in(clone, shlex.split(cmd), env)
    elif word == "pip":  # `pip install -e .[nf4]`: the extra it names exists
        extra = re.search(r"\[(\w+)\]", cmd).group(1)
        import tomllib

        assert extra in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    else:
        pytest.fail(f"{source} shows {cmd!r}, which this test does not know how to run")


def test_readme_config_error_is_what_snakemake_prints(clone, cli_env):
    """The README's example of a refused config, reproduced: its lines appear in the real output."""
    readme = (REPO / "README.md").read_text()
    block = re.search(
        r"```\n\$ (snakemake -n results/figures/)\s+# with sites\.(\w+)\.index: (\d+)\n(.*?)```", readme, re.S
    )
    cmd, site, index, shown = block.groups()
    cfg_path = clone / "config" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["sites"][site]["index"] = int(index)
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = cli_env
    r = subprocess.run(shlex.split(cmd), cwd=clone, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    for line in shown.splitlines()[1:]:  # the first names a file path the README elides
        assert line.strip() in out, f"README shows {line.strip()!r}; snakemake printed:\n{out[-3000:]}"
