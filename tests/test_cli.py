"""The command line's own behaviour: version, readable option errors, user errors without tracebacks."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from diffdict.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"diffdict {version('diffdict')}"


def test_bad_json_names_the_option_and_the_place(capsys):
    with pytest.raises(SystemExit) as e:
        main(["collect", "--stage", "metrics", "--kinds", '{"sae": topk}', "--out", "o", "x"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert "argument --kinds: not JSON (Expecting value at character 8): '{\"sae\": topk}'" in err


def test_export_of_an_inexpressible_kind_is_a_message_not_a_traceback(tmp_path, capsys):
    from diffdict.dictionaries import build
    from diffdict.dictionaries.synthetic import planted

    build("random", {"n_features": 8, "k": 2}, planted(16, 32, 2).factory(100), 16).save(tmp_path / "r.safetensors")
    assert main(["export", str(tmp_path / "r.safetensors"), "--format", "sparsify", "--out", str(tmp_path / "o")]) == 2
    assert "a 'random' dictionary cannot be written as sparsify" in capsys.readouterr().err


def test_a_missing_file_is_named_in_one_line(tmp_path, capsys):
    missing = tmp_path / "nope.yaml"
    assert main(["check-config", str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"diffdict: No such file or directory: {missing}"
    with pytest.raises(FileNotFoundError):  # --verbose keeps the traceback
        main(["--verbose", "check-config", str(missing)])


def test_check_config_layers_files_as_snakemake_does(repo, tmp_path, capsys):
    """Several files: each over the ones before (nested sections merge, lists are replaced), the
    merge snakemake applies to several --configfile values; a problem an overlay brings is named."""
    import yaml
    from snakemake.utils import update_config

    from diffdict.config import load_layered

    files = [repo / "config/config.yaml", repo / "benchmarks/shapes_world.yaml"]
    expected = yaml.safe_load(files[0].read_text())
    update_config(expected, yaml.safe_load(files[1].read_text()))
    layered = load_layered(files)
    assert layered == expected
    assert layered["prompts"]["textures"] is False and layered["prompts"]["shard_size"] == 192  # merged, not replaced
    assert main(["check-config", *map(str, files)]) == 0
    assert capsys.readouterr().out.strip() == f"{files[0]} + {files[1]}: valid"

    bad = tmp_path / "bad.yaml"
    bad.write_text("dictionaries:\n  sae:\n    k: 500\n")
    assert main(["check-config", *map(str, files), str(bad)]) == 2
    assert "config.dictionaries.sae: k=500 must be in 1..n_features=128" in capsys.readouterr().err
    assert main(["check-config", str(files[0])]) == 0  # one file, as before
    capsys.readouterr()
    # valid, but the SAE meets random directions at another budget: said on stderr, still valid
    assert main(["check-config", str(files[0]), str(repo / "benchmarks/sae_k12.yaml")]) == 0
    out = capsys.readouterr()
    assert out.out.strip().endswith("sae_k12.yaml: valid")
    assert out.err.count("warning: config.dictionaries.sae: k 12 at site") == 2
