"""How the initial rows' distribution shares out the first TopK slots on bench_sae's data.

No training: the encoder rows as each trainer drew them when this was measured (diffdict:
Gaussian directions, i.e. uniform on the sphere, `init_distribution: normal`, its default until
2026-12-05, when this result made it draw uniform rows too; sparsify: `nn.Linear`'s uniform init,
whose coordinates are bounded by 1/sqrt(d)), both at row norm 1/sqrt(3), select the top k latents of
each of 16,384 centred training tokens. Per draw: the latents that win any slot, the share of
slots the busiest 5 % of latents take, the largest squared weight a unit row puts on the 4
massive dimensions, and the correlation across latents between slots won and that weight. The
null: the same rows on the same tokens with the massive dimensions scaled back to the others'
size. Explains `sae_gap_peer_steps.md` / `sae_gap_peer_sphere.md`:

    .venv/bin/python benchmarks/init_topk_share.py --out benchmarks/results/init_topk_share
"""

from __future__ import annotations

import argparse
import shlex
import sys

import pandas as pd
import torch
from bench_sae import ROOT, make_data, parser, planted_world
from sae_gap import INIT577, diffdict_initial

from diffdict.atomic import write_table, write_text

NORM = INIT577["encoder_init_norm"]  # sparsify's nn.Linear row norm; diffdict's rows set to it
TOKENS = 16384
BUSIEST = 0.05


def rows(kind: str, d: int, n: int, seed: int) -> torch.Tensor:
    """[n, d] initial encoder rows as the trainer named ``kind`` draws them at ``seed``."""
    if kind == "sphere (diffdict)":
        return diffdict_initial(d, n, seed).W_enc.detach()
    torch.manual_seed(seed)  # sparsify draws from the global generator
    return torch.nn.Linear(d, n).weight.detach()


def shares(w: torch.Tensor, x: torch.Tensor, k: int, massive: torch.Tensor) -> dict:
    slots = torch.bincount((x @ w.T).topk(k, dim=1).indices.flatten(), minlength=len(w)).float()
    weight = (w / w.norm(dim=1, keepdim=True))[:, massive].pow(2).sum(1)
    busiest = slots.sort(descending=True).values[: int(BUSIEST * len(w))]
    return {
        "latents_winning": int((slots > 0).sum()),
        "busiest_share": float(busiest.sum() / slots.sum()),
        "max_massive_weight": float(weight.max()),
        "corr_slots_massive": float(torch.corrcoef(torch.stack([slots, weight]))[0, 1]),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", required=True, help="path stem: writes <out>.md and <out>.csv")
    o = ap.parse_args(argv)
    a = parser().parse_args([])
    train, _, _ = make_data(a)
    p = planted_world(a)
    massive = (p.massive != 1).nonzero().flatten()
    x = train[:TOKENS] - train[:TOKENS].mean(0)  # `scalar`'s centring; its one scale leaves TopK's choice alone
    data = {"as is": x, "massive scaled back (null)": x / p.massive}
    out = []
    for name, xs in data.items():
        for kind in ("sphere (diffdict)", "cube (sparsify)"):
            for seed in o.seeds:
                w = rows(kind, a.d, a.width, seed)
                out.append({"data": name, "rows": kind, "seed": seed, **shares(w, xs, a.k, massive)})
    df = pd.DataFrame(out)
    means = df.groupby(["data", "rows"], sort=False).mean(numeric_only=True).drop(columns="seed")
    cmd = shlex.join([".venv/bin/python", "benchmarks/init_topk_share.py", *(sys.argv[1:] if argv is None else argv)])
    text = "\n".join(
        [
            "# The first TopK slots under each trainer's initial rows",
            "",
            f"Command: `{cmd}`",
            "",
            f"bench_sae's data ({a.d} dims, {len(massive)} massive x20), {TOKENS:,} centred training tokens, "
            f"{a.width} rows at norm {NORM:.3f}, k {a.k}; mean over seeds {', '.join(map(str, o.seeds))} (each in "
            "the .csv).",
            "",
            f"| data | rows | latents winning a slot | slots of the busiest {BUSIEST:.0%} | largest row weight on "
            "the massive dims | corr(slots, that weight) |",
            "|---|---|---|---|---|---|",
            *(
                f"| {d} | {r} | {m.latents_winning:,.0f} | {m.busiest_share:.3f} | {m.max_massive_weight:.4f} | "
                f"{m.corr_slots_massive:.2f} |"
                for (d, r), m in means.iterrows()
            ),
            "",
        ]
    )
    write_table(ROOT / f"{o.out}.csv", df, float_format="%.5g")
    write_text(ROOT / f"{o.out}.md", text)
    print(text)


if __name__ == "__main__":
    main()
