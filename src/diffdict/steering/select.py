"""Which features to steer: the best-explained ones, so a grid shows features whose
explanation can be checked against the image."""

from __future__ import annotations

import pandas as pd


def select_features(
    explanations: pd.DataFrame,
    n: int,
    scores: pd.DataFrame | None = None,
    score: str = "balanced_accuracy",
    features: list[int] | None = None,
    match: str | None = None,
) -> dict[int, str]:
    """Top-`n` features by `score` (ties broken by feature id), as ``{feature: explanation}``.

    `match` (a regular expression) keeps only features whose explanation it finds, e.g.
    ``"^color="`` to steer colour features of the shapes world.

    `explanations` has columns ``feature, explanation``; `scores` (optional, else read from
    `explanations`) has ``feature`` and the `score` column. An explicit `features` list
    overrides the ranking (missing explanations become "").
    """
    expl = dict(zip(explanations["feature"].astype(int), explanations["explanation"].fillna("").astype(str)))
    if features is not None:
        return {int(f): expl.get(int(f), "") for f in features}
    table = (
        explanations
        if scores is None
        else explanations[["feature", "explanation"]].merge(
            scores[["feature", score]].groupby("feature", as_index=False).mean(), on="feature"
        )
    )
    if score not in table.columns:
        raise ValueError(f"no '{score}' column to rank features by; columns: {list(table.columns)}")
    if match:
        table = table[table["explanation"].fillna("").astype(str).str.contains(match, regex=True)]
    ranked = table.dropna(subset=[score]).sort_values([score, "feature"], ascending=[False, True])
    return {int(f): expl.get(int(f), "") for f in ranked["feature"].head(n)}
