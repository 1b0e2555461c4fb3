"""How far the toy's records move when only the CPU math libraries' rounding changes.

Compares result trees of the same config made under different `model.cpu_math` modes (or on other
CPUs): which artifacts are bit for bit the same as the first run's, the ground-truth checks side by
side, and the largest difference of each headline number. Run on one machine, native against
portable is a floor under any comparison of these numbers across CPUs.

    .venv/bin/python benchmarks/cpu_math.py --runs native=results/toy portable=results/toy_portable \
        native_rerun=results/toy_native portable_rerun=results/toy_portable2 --pairs portable_rerun=portable \
        --times native_rerun=SECONDS portable_rerun=SECONDS --hashes MANIFEST.json \
        --out benchmarks/results/texture_world/cpu_math

On another CPU, run `benchmarks/cpu_math.yaml` there and compare its tree with this machine's
record (`--runs` takes any trees; `--hashes` writes and `--against` reads a portable manifest).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import zarr
from safetensors import safe_open

from diffdict.devices import describe

# artifact group -> glob under a run's root
GROUPS = {
    "generations (images, latents, embeddings)": "generations/*/*.safetensors",
    "activations": "activations/*/*.zarr",
    "dictionaries": "dictionaries/*/*/dictionary.safetensors",
    "tables (without their model column)": "tables/*.csv",
}
# table -> (keys, value column): the headline numbers of each stage
HEADLINES = {
    "reconstruction": (["site", "dict"], "fvu"),
    "splice": (["site", "dict", "metric"], "recovered"),
    "interp_summary": (["site", "dict", "metric"], "mean"),
    "concepts_summary": (["site", "dict", "metric"], "mean"),
    "steering_summary": (["site", "dict", "graded_against"], "mean_shift_positive"),
}


def digest(path: Path) -> str:
    h = hashlib.sha1()
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="np") as f:
            for key in sorted(f.keys()):
                h.update(key.encode())
                h.update(np.ascontiguousarray(f.get_tensor(key)).tobytes())
    elif path.suffix == ".zarr":
        with warnings.catch_warnings():  # Snakemake's .snakemake_timestamp file in the store's folder
            warnings.simplefilter("ignore")
            root = zarr.open(str(path), mode="r")
            for key in sorted(root.array_keys()):
                h.update(key.encode())
                h.update(np.ascontiguousarray(root[key][...]).tobytes())
    else:  # a table: its `model` column is the run's name, not a result
        h.update(pd.read_csv(path).drop(columns="model", errors="ignore").to_csv(index=False).encode())
    return h.hexdigest()


def manifest(root: Path) -> dict[str, dict[str, str]]:
    return {g: {str(p.relative_to(root)): digest(p) for p in sorted(root.glob(pat))} for g, pat in GROUPS.items()}


def identical(ref: dict, other: dict) -> pd.DataFrame:
    rows = []
    for group, files in ref.items():
        shared = sorted(set(files) & set(other[group]))
        same = sum(files[f] == other[group][f] for f in shared)
        rows.append({"artifacts": group, "files": len(shared), "bit for bit the same": same})
    return pd.DataFrame(rows)


def checks(runs: dict[str, Path]) -> pd.DataFrame:
    tables = []
    for name, root in runs.items():
        t = pd.read_csv(root / "tables/ground_truth.csv")
        tables.append(t.set_index(["site", "dict", "check"])[["value", "passed"]].add_prefix(f"{name} "))
    return pd.concat(tables, axis=1).reset_index()


def headlines(runs: dict[str, Path]) -> pd.DataFrame:
    ref_name, *others = runs
    rows = []
    for table, (keys, col) in HEADLINES.items():
        frames = {n: pd.read_csv(r / f"tables/{table}.csv").set_index(keys)[col] for n, r in runs.items()}
        for other in others:
            d = (frames[other] - frames[ref_name]).abs().dropna()
            worst = d.idxmax() if len(d) else None
            rows.append(
                {
                    "table": table,
                    "number": col,
                    "runs": f"{other} vs {ref_name}",
                    "rows": len(d),
                    "identical": int((d == 0).sum()),
                    "mean |diff|": d.mean(),
                    "max |diff|": d.max(),
                    "at": " / ".join(map(str, worst)) if worst is not None else "",
                }
            )
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", nargs="+", required=True, help="name=results/<model> ...; the first is the reference")
    ap.add_argument("--times", nargs="*", default=[], help="name=seconds of the run's snakemake command")
    ap.add_argument("--pairs", nargs="*", default=[], help="a=b: also compare run a's artifacts with run b's")
    ap.add_argument("--hashes", help="write the manifest of each run here (JSON, one per run name)")
    ap.add_argument("--against", help="a manifest written by --hashes elsewhere, compared with every run")
    ap.add_argument("--out", required=True, help="output stem: .md and _checks.csv")
    a = ap.parse_args()
    runs = {n: Path(p) for n, p in (r.split("=", 1) for r in a.runs)}
    times = {n: float(s) for n, s in (t.split("=", 1) for t in a.times)}

    manifests = {n: manifest(r) for n, r in runs.items()}
    if a.hashes:
        Path(a.hashes).write_text(json.dumps({"device": describe(), "runs": manifests}, indent=1))
    ref_name = next(iter(runs))
    same = [identical(manifests[ref_name], m).assign(run=n) for n, m in manifests.items() if n != ref_name]
    for a_name, b_name in (p.split("=", 1) for p in a.pairs):
        same.append(identical(manifests[b_name], manifests[a_name]).assign(run=f"{a_name} vs {b_name}"))
    if a.against:
        other = json.loads(Path(a.against).read_text())
        for name, theirs in other["runs"].items():  # the same run's name made on another machine
            if name in manifests:
                same.append(identical(theirs, manifests[name]).assign(run=f"{name} vs {name} on {other['device']}"))
    same_df = pd.concat(same)[["run", "artifacts", "files", "bit for bit the same"]]
    check_df = checks(runs)
    check_df.to_csv(f"{a.out}_checks.csv", index=False)
    head_df = headlines(runs)

    passed = {n: int(check_df[f"{n} passed"].sum()) for n in runs}
    lines = [
        "# The toy's records under native and portable CPU math",
        "",
        f"Command: `.venv/bin/python benchmarks/cpu_math.py --runs {' '.join(a.runs)}"
        + (f" --times {' '.join(a.times)}" if a.times else "")
        + (f" --pairs {' '.join(a.pairs)}" if a.pairs else "")
        + (f" --hashes {a.hashes}" if a.hashes else "")
        + f" --out {a.out}`",
        "",
        f"Machine: {describe()}. Runs: "
        + "; ".join(f"{n} `{r}`" + (f" ({times[n]:.0f} s)" if n in times else "") for n, r in runs.items())
        + ".",
        "",
        "## Artifacts bit for bit the same as the " + ref_name + " run's (or as the run named)",
        "",
        same_df.to_markdown(index=False),
        "",
        "## Ground-truth checks (`tables/ground_truth.csv`)",
        "",
        "Checks passed: " + ", ".join(f"{n} {k} of {len(check_df)}" for n, k in passed.items()) + ".",
        "",
        check_df.to_markdown(index=False, floatfmt=".4f"),
        "",
        "## Headline numbers: largest difference to the " + ref_name + " run",
        "",
        head_df.to_markdown(index=False, floatfmt=".4f"),
        "",
    ]
    Path(f"{a.out}.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
