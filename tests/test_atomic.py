"""Atomic outputs: complete or untouched, never half-written, and no temporary left behind."""

import json

import pandas as pd
import pytest

from diffdict.atomic import atomic_path, write_json, write_table, write_text


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    out = tmp_path / "table.md"
    write_text(out, "old\n")
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert out.read_text() == "old\n"
    assert list(tmp_path.iterdir()) == [out]


def test_write_text_creates_parents_and_replaces(tmp_path):
    out = tmp_path / "a" / "b.md"
    write_text(out, "one")
    write_text(out, "two")
    assert out.read_text() == "two"
    assert list(out.parent.iterdir()) == [out]


def test_write_json_key_order(tmp_path):
    write_json(tmp_path / "s.json", {"b": 1, "a": 2})
    write_json(tmp_path / "k.json", {"b": 1, "a": 2}, sort_keys=False)
    assert list(json.loads((tmp_path / "s.json").read_text())) == ["a", "b"]
    assert list(json.loads((tmp_path / "k.json").read_text())) == ["b", "a"]


def test_write_table_passes_writer_options(tmp_path):
    write_table(tmp_path / "t.csv", pd.DataFrame({"x": [1 / 3]}), float_format="%.3g")
    assert (tmp_path / "t.csv").read_text() == "x\n0.333\n"
    with pytest.raises(ValueError, match="parquet or .csv"):
        write_table(tmp_path / "t.txt", pd.DataFrame({"x": [1]}))
