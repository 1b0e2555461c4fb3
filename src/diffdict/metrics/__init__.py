"""Metrics: reconstruction (FVU, L0, dead), spliced generation, concept recovery."""
