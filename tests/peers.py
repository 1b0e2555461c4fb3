"""The peer SAE libraries (requirements-peers.txt) for the tests that run against them."""

from __future__ import annotations

import importlib
import os

import pytest


def require_peer(name: str):
    """The peer module ``name``; a test module without it is skipped, except under
    ``DIFFDICT_REQUIRE_PEERS`` (CI), where a missing peer is an error rather than a silent skip."""
    if os.environ.get("DIFFDICT_REQUIRE_PEERS"):
        return importlib.import_module(name)
    return pytest.importorskip(name, reason="pip install -r requirements-peers.txt")
