"""profiles/slurm against a real SLURM: a small toy run submitted through sbatch, checked with sacct.

CI starts a one-node cluster with scripts/slurm-single-node.sh; elsewhere the test skips.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import pandas as pd
import pytest
import yaml

from diffdict import cpu_math

from workflow_utils import REPO, dictionary_devices, minimal_config, snakemake_command

pytestmark = pytest.mark.slow
SETUP = "scripts/slurm-single-node.sh"


def cluster_problem() -> str | None:
    """Why no SLURM cluster can take jobs here, or None."""
    for tool in ("sbatch", "sacct", "scontrol", "sinfo"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True)
    if "UP" not in ping.stdout:
        return "slurmctld does not answer `scontrol ping`"
    states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.split()
    if not any(s.startswith(("idle", "mix")) for s in states):
        return f"no idle node (sinfo says {states or 'nothing'})"
    if subprocess.run(["sacct", "-n", "-X"], capture_output=True).returncode != 0:
        return "sacct fails (accounting is off)"
    return None


def adapted_profile(dest, partition: str, cpus: int):
    """profiles/slurm with only the lines marked CHANGE adapted to this cluster, as a user would."""
    edits = {
        "slurm_partition": f'"{partition}"',
        "cpus_per_task": str(cpus),
        "slurm_account": None,
        "gpu_model": None,
    }  # None: remove the line
    lines = []
    for line in (REPO / "profiles/slurm/config.yaml").read_text().splitlines():
        m = re.match(r"(\s*)(\w+):\s*[^#]*#\s*CHANGE", line)
        if m:
            assert m.group(2) in edits, f"a CHANGE line this test does not know how to adapt: {line}"
            if edits[m.group(2)] is None:
                continue
            line = f"{m.group(1)}{m.group(2)}: {edits[m.group(2)]}"
        lines.append(line)
    dest.mkdir()
    (dest / "config.yaml").write_text("\n".join(lines) + "\n")
    return yaml.safe_load((dest / "config.yaml").read_text())


def test_toy_run_through_real_slurm(tmp_path, cli_env):
    problem = cluster_problem()
    if problem and os.environ.get("DIFFDICT_REQUIRE_SLURM"):  # CI started one: a skip would hide a failure
        pytest.fail(f"DIFFDICT_REQUIRE_SLURM is set but {problem}")
    if problem:
        pytest.skip(f"no SLURM cluster here ({problem}); `sudo {SETUP}` starts a one-node one")
    partition = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True).stdout.split()[0]
    profile = adapted_profile(tmp_path / "profile", partition.rstrip("*"), cpus=1)
    assert profile["executor"] == "slurm"
    cfg = minimal_config()
    if cpu_math.has_avx2():  # the SLURM jobs' own snakemake must set the pins again (checked below)
        cfg["model"]["cpu_math"] = "portable"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))

    since = time.strftime("%Y-%m-%dT%H:%M:%S")
    # The README's command with the adapted profile; only the polling is made faster for a tiny DAG.
    cmd = snakemake_command(
        "--profile",
        str(tmp_path / "profile"),
        "results/figures/",
        "--configfile",
        "config.yaml",
        "--latency-wait",
        "5",
        "--slurm-init-seconds-before-status-checks",
        "2",
        "--seconds-between-status-checks",
        "2",
        profile=None,  # the workflow profile is read as a user's run reads it
    )
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=cli_env, timeout=1800)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-8000:]
    assert (tmp_path / "results/figures/reconstruction.png").exists()

    # Every job snakemake ran remotely is a SLURM job that completed, and none ran anywhere else.
    acct = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-S", since, "-o", "JobID,Comment,State,Partition"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    jobs = pd.DataFrame(
        [line.split("|") for line in acct.splitlines() if line], columns=["id", "comment", "state", "partition"]
    )
    jobs = jobs[jobs.comment.str.startswith("rule_")]
    remote = re.findall(r"^\s*rule (\w+):", out, re.M)
    local = set(re.findall(r"^\s*localrule (\w+):", out, re.M))
    assert remote, out[-4000:]
    assert len(jobs) == len(remote), (len(jobs), len(remote))
    assert (jobs.state == "COMPLETED").all(), jobs[jobs.state != "COMPLETED"]
    assert set(jobs.partition) == {partition.rstrip("*")}
    submitted = {re.match(r"rule_(\w+?)_wildcards", c).group(1) if "_wildcards" in c else c[5:] for c in jobs.comment}
    assert submitted == set(remote)
    # Only jobs that run no command (target aggregations) stay on the submitting machine.
    assert local <= {"all", "figures"}, local
    if cfg["model"].get("cpu_math") == "portable":  # model.cpu_math reached the jobs sbatch ran
        devices = dictionary_devices(tmp_path / "results/toy")
        assert devices and all(cpu_math.PINNED_NOTE in d for d in devices), devices
