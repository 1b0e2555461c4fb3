"""The toy DAG end to end in a temporary directory, partial reruns, and resumable jobs."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from diffdict import cpu_math

from workflow_utils import dictionary_devices, planned_jobs, small_config, snakemake, snakemake_command

pytestmark = pytest.mark.slow


def is_aggregation(rule: str) -> bool:
    """Jobs that legitimately rerun whenever any site or dictionary changes: they gather all."""
    return rule in ("all", "figures", "report_index") or rule.startswith(("collect_", "figure_"))


PORTABLE = cpu_math.has_avx2()  # x86-64 CPUs without AVX2 cannot take the portable paths


@pytest.fixture(scope="module")
def run(tmp_path_factory, cli_env):
    """One full run of the small toy workflow, shared by the tests of this module."""
    workdir = tmp_path_factory.mktemp("wf")
    cfg = small_config()
    if PORTABLE:  # the other workflow tests run native: both modes are exercised
        cfg["model"]["cpu_math"] = "portable"
    snakemake(workdir, cfg, "results/figures/", env=cli_env)
    return workdir, cfg


def test_end_to_end_produces_figures_and_honest_metrics(run):
    workdir, cfg = run
    figures = workdir / "results" / "figures"
    assert (figures / "reconstruction.png").stat().st_size > 10_000
    table = pd.read_csv(workdir / "results" / "toy" / "tables" / "reconstruction.csv")
    resid = table[table.site == "double1_img"].set_index("dict")
    assert set(resid.index) == {"sae", "itda", "random"}
    # A trained dictionary must beat random directions with the same k on held-out tokens.
    assert resid.loc["sae", "fvu"] < 0.9 * resid.loc["random", "fvu"], resid
    assert resid.loc["itda", "fvu"] < resid.loc["random", "fvu"], resid
    assert (table["l0"] <= 8 + 1e-6).all()


@pytest.mark.skipif(not PORTABLE, reason="the run is native on a CPU without AVX2")
def test_portable_math_reaches_every_job(run):
    """`model.cpu_math: portable` is set by the workflow for its jobs: each dictionary says so."""
    workdir, _ = run
    devices = dictionary_devices(workdir / "results/toy")
    assert devices and all(d.endswith(f"; {cpu_math.PINNED_NOTE})") for d in devices), devices


def test_nothing_to_do_after_a_complete_run(run, cli_env):
    workdir, cfg = run
    r = snakemake(workdir, cfg, "-n", "results/figures/", env=cli_env)
    assert "Nothing to be done" in r.stdout + r.stderr


def test_execution_settings_rerun_nothing(run, cli_env):
    """How a job runs (resources, device, offloading) is not what it computes."""
    workdir, cfg = run
    cfg = copy.deepcopy(cfg)
    cfg["model"].update(runtime=999, mem_mb=123456, gpu=True, device="cpu", cpu_offload=True, cpu_math="native")
    r = snakemake(workdir, cfg, "-n", "results/figures/", "--resources", "gpu=1", env=cli_env)
    assert "Nothing to be done" in r.stdout + r.stderr, planned_jobs(r.stdout)


def test_adding_a_site_reruns_only_that_site_and_aggregations(run, cli_env):
    workdir, cfg = run
    cfg = copy.deepcopy(cfg)
    cfg["sites"]["single0_img"] = {**cfg["sites"]["single1_img"], "index": 0}
    r = snakemake(workdir, cfg, "-n", "results/figures/", env=cli_env)
    jobs = planned_jobs(r.stdout)
    assert jobs, r.stdout
    new_site = [j for j in jobs if j["wildcards"].get("site") == "single0_img"]
    stray = [j for j in jobs if j not in new_site and not is_aggregation(j["rule"])]
    assert not stray, f"jobs neither of the new site nor aggregations were planned: {stray}"
    assert not any(j["rule"] == "generate" for j in jobs), "adding a site must not regenerate images"
    captured = {(j["wildcards"]["split"], j["wildcards"]["shard"]) for j in new_site if j["rule"] == "capture"}
    assert len(captured) == 2 + 1 + 1  # every shard of every split, replayed for the new site only


def test_changing_one_dictionary_reruns_only_it(run, cli_env):
    workdir, cfg = run
    cfg = copy.deepcopy(cfg)
    cfg["dictionaries"]["itda"]["cos_threshold"] = 0.9
    jobs = planned_jobs(snakemake(workdir, cfg, "-n", "results/figures/", env=cli_env).stdout)
    assert {j["wildcards"].get("dict") for j in jobs if "dict" in j["wildcards"]} == {"itda"}
    assert not any(j["rule"] in ("generate", "capture", "merge_activations") for j in jobs)


def test_replicates_are_interpreted_and_pooled_but_not_steered(run, cli_env):
    workdir, cfg = run
    summary = pd.read_csv(workdir / "results/toy/tables/interp_summary.csv")
    assert {"balanced_accuracy", "token_f1"} <= set(summary["metric"])  # the token-level judge too
    summary = summary[summary["metric"] == "balanced_accuracy"].set_index(["site", "dict"])
    assert summary.loc[("double1_img", "sae"), "replicates"] == 2
    assert summary.loc[("double1_img", "random"), "replicates"] == 1
    # every latent is judged or counted as left out (the sample is at most the eligible ones)
    for _, r in summary.iterrows():
        assert r["n_features"] <= r["latents"] - r["left_out_dense"] - r["left_out_rare"], r
    runs = pd.read_csv(workdir / "results/toy/tables/interp_runs.csv")
    assert (
        summary.loc[("double1_img", "sae"), "latents"]
        == runs.query("site == 'double1_img' and dict == 'sae'")["n_features_total"].sum()
    )
    assert (workdir / "results/toy/dictionaries/double1_img/sae-r1/dictionary.safetensors").exists()
    assert not (workdir / "results/toy/steering/double1_img/sae-r1").exists()
    # a third replicate: only its own training, features and explanations, plus the aggregations
    cfg = copy.deepcopy(cfg)
    cfg["dictionaries"]["sae"]["replicates"] = 3
    jobs = planned_jobs(snakemake(workdir, cfg, "-n", "results/figures/", env=cli_env).stdout)
    own = {j["rule"] for j in jobs if j["wildcards"].get("dict") == "sae-r2"}
    assert own == {"train_dictionary", "features", "explain", "concept_recovery"}, jobs
    assert all(j["wildcards"].get("dict") == "sae-r2" or is_aggregation(j["rule"]) for j in jobs), jobs


def test_ground_truth_tables_carry_their_nulls(run):
    workdir, _ = run
    tables = workdir / "results/toy/tables"
    concepts = pd.read_csv(tables / "concepts.csv")
    need = {
        "site",
        "dict",
        "kind",
        "replicate",
        "concept",
        "token_auroc",
        "token_f1",
        "image_auroc",
        "probe_token_auroc",
    }
    assert need <= set(concepts.columns)
    assert set(concepts.loc[concepts["dict"] == "sae", "replicate"]) == {0, 1}  # every replicate
    # the probe ceiling sits beside every site's rows (NaN only for a concept absent from a half)
    assert (concepts.groupby("site")["probe_token_auroc"].count() > 0).all()
    summary = pd.read_csv(tables / "concepts_summary.csv")
    assert {"token_auroc", "kind_token_auroc"} <= set(summary["metric"])
    sae = summary[(summary["metric"] == "token_auroc")].set_index(["site", "dict"]).loc[("double1_img", "sae")]
    assert sae["baseline"] == "random" and sae["replicates"] == 2
    assert {"diff_vs_random", "diff_lo", "diff_hi", "separated", "probe"} <= set(summary.columns)
    steering = pd.read_csv(tables / "steering_summary.csv")
    assert {"own", "other_value"} <= set(steering["graded_against"])
    splice = json.loads((workdir / "results/toy/metrics/double1_img/sae/splice.json").read_text())
    assert 0 <= splice["agreement_ablate"] <= 1 and "effect_recovered_annotation" in splice
    # the verdict: every resid site's SAE checked against random directions, beside the figures
    checks = pd.read_csv(tables / "ground_truth.csv")
    assert set(checks["site"]) == set(summary.loc[summary["kind"] == "random", "site"])
    assert {"core_token_auroc", "margin_vs_random", "interp_token_f1_vs_random (annotation)"} <= set(checks["check"])
    assert checks["null"].notna().all() and checks["passed"].dtype == bool
    # every comparison is at one budget: the SAE and random directions keep the config's k per token
    assert checks["l0"].notna().all() and np.allclose(checks["l0"], checks["null_l0"], rtol=0.02)
    assert "checks pass" in (workdir / "results/figures/ground_truth.md").read_text()
    assert "Ground-truth checks" in (workdir / "results/report/index.html").read_text()


def test_metrics_are_json(run):
    workdir, _ = run
    m = json.loads((workdir / "results/toy/metrics/double1_img/sae/reconstruction.json").read_text())
    assert 0 < m["fvu"] < 1 and m["n_tokens"] > 0


def test_readme_python_runs_on_a_finished_run(run, monkeypatch):
    """The README's Python example, run as shown in a finished run's folder."""
    import re

    from workflow_utils import REPO

    workdir, _ = run
    readme = (REPO / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "from diffdict" in b]
    assert blocks
    if not (workdir / "resources").exists():  # the example names the committed toy as a clone has it
        (workdir / "resources").symlink_to(REPO / "resources")
    monkeypatch.chdir(workdir)
    ns: dict = {}
    for code in blocks:
        exec(compile(code, "README.md", "exec"), ns)
    assert 0 < float(ns["fvu"]) < 0.5
    assert ns["top"].act.iloc[0] > 0  # the chosen texture feature fires on the interp images
    assert ns["steered"].shape == ns["plain"].shape and (ns["steered"] != ns["plain"]).any()


def test_killed_training_leaves_no_output_and_resumes(run, cli_env):
    """SIGKILL the whole snakemake process group mid-training; the rerun resumes from the checkpoint."""
    import os
    import signal
    import subprocess
    import time

    import yaml

    workdir, cfg = run
    cfg = copy.deepcopy(cfg)
    cfg["dictionaries"]["sae_long"] = {
        **cfg["dictionaries"]["sae"],
        "tokens": 400_000,
        "checkpoint_every": 20,
        "sites": ["double1_img"],
    }
    target = "results/toy/dictionaries/double1_img/sae_long/dictionary.safetensors"
    ckpt = workdir / "results/toy/checkpoints/double1_img/sae_long/checkpoint.pt"
    (workdir / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = snakemake_command("--cores", "1", target, workdir=workdir, configfile=workdir / "config.yaml")
    proc = subprocess.Popen(
        cmd, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 300
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    assert ckpt.exists(), "no checkpoint appeared before the job ended"
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    out_dir = workdir / target.rsplit("/", 1)[0]
    assert not (workdir / target).exists(), "a killed job left an output that looks complete"
    assert not any(out_dir.glob("*.safetensors")) if out_dir.exists() else True

    snakemake(workdir, cfg, "--unlock", env=cli_env)  # the killed run's lock, as a user would
    snakemake(workdir, cfg, target, env=cli_env)
    log = (workdir / "results/toy/logs/train_dictionary/double1_img/sae_long.log").read_text()
    assert "resuming from step" in log
    from diffdict.dictionaries import load_dictionary

    d = load_dictionary(workdir / target)
    assert d.n_features == cfg["dictionaries"]["sae"]["n_features"]


def test_report_archive(run, cli_env):
    """`snakemake --report results/report/workflow.zip` on a complete run: every figure with its caption."""
    import zipfile

    workdir, cfg = run
    snakemake(workdir, cfg, "--report", "results/report/workflow.zip", env=cli_env)
    names = zipfile.ZipFile(workdir / "results/report/workflow.zip").namelist()
    assert any(n.endswith("report.html") for n in names)
    assert any(n.endswith("reconstruction.png") for n in names), names[:20]


KILL_MOMENTS = ("capture", "train_dictionary", "explain", "figures")  # log folders of those jobs


def test_kill_at_any_moment_then_the_readme_command(run, tmp_path, cli_env):
    """kill -9 the whole snakemake process group during capture, training, explanation and the
    figures; each time `snakemake --unlock` and the same command, as the README says (the workflow
    profile profiles/default is read as it is for a user). The result equals an uninterrupted run."""
    import os
    import signal
    import subprocess
    import time

    import yaml

    ref_dir, cfg = run
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    base = snakemake_command("--cores", "2", workdir=tmp_path, configfile=tmp_path / "config.yaml", profile=None)
    command = [*base, "results/figures/"]  # "the same command", every time
    logs = tmp_path / "results/toy/logs"

    for moment in KILL_MOMENTS:
        proc = subprocess.Popen(
            command, env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.time() + 600
        while proc.poll() is None and time.time() < deadline and not any((logs / moment).rglob("*.log")):
            time.sleep(0.05)
        time.sleep(0.3)  # into the job, not at its first line
        assert proc.poll() is None, f"the run ended before any {moment} job started"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        subprocess.run([*base, "--unlock"], env=cli_env, check=True, capture_output=True)

    done = subprocess.run(command, env=cli_env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-6000:]
    tables = sorted(p.relative_to(ref_dir) for p in (ref_dir / "results/toy/tables").glob("*.csv"))
    assert tables
    for rel in tables:
        assert (tmp_path / rel).read_bytes() == (ref_dir / rel).read_bytes(), (
            f"{rel} differs from the uninterrupted run"
        )
    for name in ("reconstruction.png", "interp_scores.png", "concept_recovery.png"):
        assert (tmp_path / "results/figures" / name).exists()
