"""Per-feature file names shared by the stages that write them (interp cards, steering rows) and
the browser that publishes them: one width, so names sort by feature up to a million features."""

from __future__ import annotations


def feature_file(feature: int, suffix: str = ".png") -> str:
    return f"feature_{int(feature):06d}{suffix}"
