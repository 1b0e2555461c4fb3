"""Run the real Snakefile on a small toy config in a temporary directory."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def dictionary_devices(results: Path) -> list[str]:
    """What every dictionary of a run says built it (`extra.device` of its metadata), one per file."""
    from diffdict.dictionaries.base import read_metadata

    return [
        read_metadata(w)["extra"]["device"] for w in sorted(results.glob("dictionaries/*/*/dictionary.safetensors"))
    ]


def small_config(results: str = "results") -> dict:
    """The embedded default shrunk to seconds: fewer prompts and tokens, same stages."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg = copy.deepcopy(cfg)
    cfg["results"] = results
    cfg["model"]["path"] = str(REPO / cfg["model"]["path"])
    cfg["prompts"].update(shard_size=32, splits={"train": 64, "interp": 32, "test": 32})
    cfg["interp"].update(n_pos=5, n_neg=5)  # 16 held-out images: 8 + 8 would leave no eligible feature
    for d in cfg["dictionaries"].values():
        d.pop("replicates", None)
        if d["kind"] == "topk_sae":
            d["tokens"] = 100_000  # ~25 epochs of the 4,096 training tokens: seconds at d=64
            d["replicates"] = 2  # pooled by the interp tables; the other stages use replicate 0
    return cfg


def minimal_config() -> dict:
    """One resid site, one trained dictionary (one run) and random directions, no MLP site."""
    cfg = small_config()
    cfg["sites"] = {"double1_img": cfg["sites"]["double1_img"]}
    cfg["dictionaries"] = {
        "sae": {**cfg["dictionaries"]["sae"], "replicates": 1},
        "random": cfg["dictionaries"]["random"],
    }
    return cfg


def snakemake_command(
    *args: str, workdir: Path | None = None, configfile: Path | None = None, profile: str | None = "none"
) -> list[str]:
    """`python -m snakemake` on the repository's Snakefile, then `args`. `profile` is the workflow
    profile: "none" keeps profiles/default's settings out of a test; None reads it as a user's run does."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile")]
    if workdir is not None:
        cmd += ["-d", str(workdir)]
    if configfile is not None:
        cmd += ["--configfile", str(configfile)]
    if profile is not None:
        cmd += ["--workflow-profile", profile]
    return [*cmd, *args]


def snakemake(
    workdir: Path, cfg: dict, *args: str, env: dict, check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess:
    cfg_path = workdir / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = snakemake_command("--cores", "2", *args, workdir=workdir, configfile=cfg_path)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and r.returncode != 0:
        logs = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted(workdir.rglob("*.log"))[-5:])
        raise AssertionError(f"snakemake failed ({r.returncode}):\n{r.stdout[-6000:]}\n{r.stderr[-6000:]}\n{logs}")
    return r


def planned_jobs(dry_run_output: str) -> list[dict]:
    """Parse `snakemake -n` output into [{'rule': ..., 'wildcards': {...}}, ...]."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", dry_run_output):
        m = re.match(r"(?:local)?rule (\w+):", block.strip())
        if not m:
            continue
        wc = {}
        w = re.search(r"^\s*wildcards: (.*)$", block, re.M)
        if w:
            wc = dict(kv.split("=", 1) for kv in w.group(1).split(", "))
        jobs.append({"rule": m.group(1), "wildcards": wc})
    return jobs
