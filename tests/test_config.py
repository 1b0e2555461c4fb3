"""Config validation: bad input fails at once with a message naming the valid choices."""

import copy
import subprocess

import pytest
import yaml
from snakemake.utils import update_config

from diffdict import config as dcfg

from workflow_utils import snakemake_command


@pytest.fixture(scope="module")
def default(repo):
    return yaml.safe_load((repo / "config" / "config.yaml").read_text())


def test_default_config_is_valid_and_gets_defaults(default):
    cfg = dcfg.check(default)
    site = next(iter(cfg["sites"].values()))
    assert site["stream"] in ("img", "txt")
    assert cfg["model"]["batch_size"] >= 1  # filled from the schema


def _trained_recipe(training_json, world: dict) -> dict:
    """The `world` keys of a toy's training.json (which names the world only for the texture world)."""
    import json

    trained = {"textures": False, **json.loads(training_json.read_text())}
    renamed = {"train_images": "n_images", "train_steps": "steps", "size": "size_overrides", "threads": "torch_threads"}
    return {k: trained[renamed.get(k, k)] for k in world}


def _layered(default, repo, *layers):
    """The default config with benchmark YAMLs layered over it by snakemake's own --configfile merge."""
    cfg = copy.deepcopy(default)
    for layer in layers:
        update_config(cfg, yaml.safe_load((repo / "benchmarks" / layer).read_text()))
    return dcfg.check(cfg)


def test_default_world_is_the_committed_texture_toy(default, repo):
    """config.yaml's `world` is what trained resources/toy-textures (its training.json), or the
    train_toy_model rule would describe another model; its prompts name textures as the toy learnt."""
    checked = dcfg.check(default)
    assert checked["model"]["path"] == "resources/toy-textures"
    assert _trained_recipe(repo / checked["model"]["path"] / "training.json", checked["world"]) == checked["world"]
    assert checked["world"]["textures"] and checked["prompts"]["textures"]
    steer = _layered(default, repo, "toy_pilot_tex_steer.yaml")
    assert steer["steering"]["match"] == "^texture=" and steer["world"] == checked["world"]


def test_recipe_defaults_are_the_committed_shapes_toy(default, repo):
    """The recipe's defaults (a config without `world`) train resources/toy-shapes, and
    benchmarks/shapes_world.yaml layered over the default config selects exactly that toy and world."""
    plain = copy.deepcopy(default)
    del plain["world"]
    plain["prompts"].pop("textures")
    plain["model"]["path"] = "resources/toy-shapes"
    world = dcfg.check(plain)["world"]
    assert _trained_recipe(repo / "resources/toy-shapes/training.json", world) == world
    shapes = _layered(default, repo, "shapes_world.yaml")
    assert shapes["model"]["path"] == "resources/toy-shapes" and shapes["world"] == world
    assert not shapes["prompts"]["textures"] and shapes["model"]["name"] != dcfg.check(default)["model"]["name"]


def test_sweep_sites_overlay_is_valid_in_both_worlds(default, repo):
    """benchmarks/sweep_sites.yaml adds its four sites to either world's config (checked against each toy)."""
    for layers in (("sweep_sites.yaml",), ("shapes_world.yaml", "sweep_sites.yaml")):
        sites = _layered(default, repo, *layers)["sites"]
        assert {"double1_late", "single1_late", "double0_img", "single0_img"} <= set(sites)
        assert set(default["sites"]) < set(sites)


def test_every_benchmark_overlay_is_valid(default, repo):
    """Each config layered over config.yaml in a benchmark's command passes the schema."""
    overlays = sorted(p.relative_to(repo / "benchmarks") for p in (repo / "benchmarks").rglob("*.yaml"))
    assert overlays
    for layer in overlays:
        assert _layered(default, repo, str(layer))["model"]["name"], layer


OTHER = ("sweep_sites.yaml", "other_seeds.yaml")


@pytest.mark.parametrize("base", [(), OTHER])
def test_batch_topk_overlay_differs_from_the_sae_in_batch_topk_alone(default, repo, base):
    """benchmarks/results/texture_world/batch_topk.md compares the SAE with a BatchTopK SAE trained alike
    (on the other config the SAE's seeds are 10-12, the BatchTopK SAE's 0-2, as the Matryoshka SAE's)."""
    cfg = _layered(default, repo, *base, "batch_topk.yaml")
    btk, sae = dict(cfg["dictionaries"]["batchtopk"]), dict(cfg["dictionaries"]["sae"])
    assert sae.pop("seed", 0) == (10 if base else 0) and "seed" not in btk
    assert btk.pop("batch_topk") is True and btk == sae
    assert not cfg["dictionaries"]["sae"].get("batch_topk", False)


def test_plain_world_batch_topk_overlay_differs_from_its_sae_in_batch_topk_alone(default, repo):
    cfg = _layered(default, repo, "shapes_world.yaml", "batch_topk.yaml", "batch_topk_shapes.yaml")
    btk, sae = dict(cfg["dictionaries"]["batchtopk"]), dict(cfg["dictionaries"]["sae"])
    assert btk.pop("batch_topk") is True and btk == sae and sae["init_distribution"] == "normal"


@pytest.mark.parametrize("base", [(), OTHER])
def test_matryoshka_batch_topk_overlay_is_both_parents_settings_at_once(default, repo, base):
    """benchmarks/results/texture_world/matryoshka_batch_topk.md: the Matryoshka SAE's entry with
    `batch_topk: true`, which is the BatchTopK SAE's entry with the Matryoshka kind."""
    layers = (*base, "matryoshka.yaml", "batch_topk.yaml", "matryoshka_batch_topk.yaml")
    d = {k: dict(v) for k, v in _layered(default, repo, *layers)["dictionaries"].items()}
    assert d["mbtk"] == {**d["matryoshka"], "batch_topk": True} == {**d["batchtopk"], "kind": "matryoshka_sae"}


def test_conjunctions_overlay_adds_an_explainer_beside_the_default(default, repo):
    explainers = _layered(default, repo, "conjunctions.yaml")["interp"]["explainers"]
    assert explainers["conj2"] == {**explainers["annotation"], "max_concepts": 2}


@pytest.mark.parametrize(
    "base, overlays, key, values",
    [
        ((), ("init_scale/normal.yaml", "init_scale/enc577.yaml"), "encoder_init_norm", (1.0, 0.577)),
        (OTHER, ("init_scale/other_normal.yaml", "init_scale/other_enc577.yaml"), "encoder_init_norm", (1.0, 0.577)),
        ((), ("init_scale/normal.yaml", "init_scale/uniform.yaml"), "init_distribution", ("normal", "uniform")),
        ((), ("auxk_all.yaml", "auxk_latents.yaml"), "auxk_grad", ("all", "latents")),
        ((), (None, "auxk_all.yaml"), "auxk_grad", ("latents", "all")),
    ],
)
def test_init_runs_differ_from_their_base_only_in_the_init(default, repo, base, overlays, key, values):
    """benchmarks/results/texture_world/init_scale.md, init_distribution.md and auxk_grad_runs.md compare runs
    that differ in one SAE setting alone (and in the results tree's name); None: the base config itself."""
    a, b = (_layered(default, repo, *base, *[o for o in [overlay] if o]) for overlay in overlays)
    assert b["model"]["name"] != a["model"]["name"]
    assert tuple(c["dictionaries"]["sae"].get(key, d) for c, d in zip((a, b), values)) == values
    assert b["dictionaries"]["sae"][key] == values[1]
    for cfg in (a, b):
        cfg["model"].pop("name")
        cfg["dictionaries"]["sae"].pop(key, None)
    assert a == b


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda c: c["sites"]["double1_img"].update(indx=1), ["unknown key 'indx'", "valid keys:", "index"]),
        (lambda c: c["sites"]["double1_img"].update(index=999), ["index 999 does not exist", "valid: 0.."]),
        (lambda c: c["dictionaries"]["sae"].update(kind="foo"), ["kind: 'foo' unknown; valid: topk_sae, itda"]),
        (lambda c: c["sites"]["double1_img"].update(steps=[0, 99]), ["steps [99]", "valid: 0.."]),
        (lambda c: c["model"].update(precision="int3"), ["'int3'", "nf4"]),
        (lambda c: c.update(sitez={}), ["unknown key 'sitez'", "sites"]),
        (lambda c: c["dictionaries"]["sae"].update(lrr=1e-3), ["unknown key 'lrr' for kind 'topk_sae'", "lr"]),
        (lambda c: c["dictionaries"]["sae"].update(sites=["nope"]), ["unknown site 'nope'", "double1_img"]),
        (lambda c: c["dictionaries"]["neurons"].update(sites=["double1_img"]), ["needs a site with place 'mlp'"]),
        (lambda c: c["interp"].update(positives="best"), ["positives 'best' is not one of", "quantiles"]),
        (lambda c: c["dictionaries"]["neurons"].update(replicates=2), ["kind 'neurons' has no seed", "must be 1"]),
        (lambda c: c["dictionaries"].update({"sae-r1": {"kind": "random"}}), ["would be named 'sae-r1'"]),
        (lambda c: c["dictionaries"]["sae"].update(replicates=0), ["replicates", "minimum"]),
        # a kind's settings are typed by its settings class (the generated schema)
        (
            lambda c: c["dictionaries"]["sae"].update(k="eight"),
            ["config.dictionaries.sae.k: 'eight' is not", "integer"],
        ),
        (lambda c: c["dictionaries"]["itda"].update(normalize="zscore"), ["dictionaries.itda.normalize", "robust"]),
        (lambda c: c["dictionaries"]["sae"].update(lr="fast"), ["dictionaries.sae.lr: 'fast' is not", "number"]),
        # and the rules between them, before any job runs (the settings class's own checks)
        (lambda c: c["dictionaries"]["sae"].update(k=500), ["config.dictionaries.sae: k=500 must be in 1..n_features"]),
        (
            lambda c: c["dictionaries"]["sae"].update(batch_topk_threshold="calibrated"),
            ["config.dictionaries.sae: batch_topk_threshold='calibrated' needs batch_topk: true"],
        ),
        (lambda c: c["dictionaries"]["itda"].update(cos_threshold=0), ["config.dictionaries.itda: cos_threshold 0"]),
        # an interp split too small for any feature to be explained and judged
        (
            lambda c: c["prompts"]["splits"].update(interp=31),  # the default judges 8 + 8 held-out images
            ["config.prompts.splits.interp: 31 images can explain no feature", "valid: interp >= 32"],
        ),
        (lambda c: c["interp"].update(n_pos=200), ["splits.interp: 384 images", "n_pos + interp.n_neg = 200 + 8"]),
        (lambda c: c["interp"].update(explain_fraction=1.0), ["config.interp.explain_fraction: 1.0 is greater than"]),
        (lambda c: c["sites"]["double1_img"].update(steps=[1, 1]), ["steps: [1, 1] has non-unique elements"]),
        (lambda c: c["steering"].update(strengths=[]), ["config.steering.strengths: [] should be non-empty"]),
        (lambda c: c["dictionaries"]["sae"].update(batch_size=0), ["dictionaries.sae.batch_size: 0 is less than"]),
        (lambda c: c["dictionaries"]["itda"].update(max_atoms=0), ["dictionaries.itda.max_atoms: 0 is less than"]),
        # a batch larger than an epoch of the train split (384 images x 2 steps x 32 tokens kept)
        (
            lambda c: c["dictionaries"]["itda"].update(batch_size=24577),
            ["config.dictionaries.itda.batch_size: 24577 tokens per batch", "site 'double1_img' holds 24576"],
        ),
        (lambda c: c["steering"].update(features=0), ["config.steering.features: 0 is less than the minimum of 1"]),
        (lambda c: c["interp"].update(ci=95), ["config.interp.ci: 95 is greater than or equal to the maximum of 1"]),
        (lambda c: c["steering"].update(strengths=0.8), ["config.steering.strengths: 0.8 is not of type 'array'"]),
        (lambda c: c["interp"].update(n_pos="five"), ["config.interp.n_pos: 'five' is not of type 'integer'"]),
        (lambda c: c.update(world={"train_step": 5}), ["config.world: unknown key 'train_step'", "train_steps"]),
        (lambda c: c.update(world={"size": {"width": 96}}), ["config.world.size: unknown key 'width'", "num_layers"]),
        (lambda c: c.update(world={"lr": 0}), ["config.world.lr: 0 is less than or equal to the minimum of 0"]),
    ],
)
def test_bad_config_names_problem_and_choices(default, mutate, expected):
    cfg = copy.deepcopy(default)
    mutate(cfg)
    with pytest.raises(dcfg.ConfigError) as e:
        dcfg.check(cfg)
    for text in expected:
        assert text in str(e.value), str(e.value)


def _epoch_error(cfg) -> str:
    with pytest.raises(dcfg.ConfigError) as e:
        dcfg.check(cfg)
    return str(e.value)


def test_training_batch_must_fit_one_epoch_of_the_train_split(default, tmp_path):
    """An epoch is train images x steps x the tokens each image gives the site: exactly the rows of
    the site's train store (results/toy: 24,576 at double1_img), so a batch of that size passes and
    one more token fails, at config time instead of in the training job after every capture."""
    cfg = copy.deepcopy(default)
    cfg["dictionaries"]["sae"]["batch_size"] = 384 * 2 * 32
    dcfg.check(cfg)
    cfg["prompts"]["splits"]["train"] = 383
    msg = _epoch_error(cfg)
    assert "sae.batch_size: 24576 tokens per batch, but one epoch of site 'double1_img' holds 24512" in msg
    assert "(prompts.splits.train 383 images x 2 steps x 32 tokens); valid: batch_size <= 24512" in msg
    # without tokens_per_image a site keeps every token of its stream: 64 image tokens of the toy, or
    # the T5 sequence (model.max_sequence_length) on a text-stream site
    cfg = copy.deepcopy(default)
    cfg["sites"] = {"t": {"block": "double", "index": 0, "stream": "txt"}, "i": {"block": "double", "index": 0}}
    cfg["dictionaries"] = {"sae": {"kind": "topk_sae", "n_features": 64, "k": 4, "batch_size": 384 * 16 + 1}}
    msg = _epoch_error(cfg)
    assert "site 't' holds 6144 (prompts.splits.train 384 images x 1 steps x 16 tokens)" in msg
    assert "site 'i'" not in msg  # 384 x 64 tokens
    # a toy the workflow has still to train: the token grid of its configured VAE (2x down: 16 x 16)
    cfg = copy.deepcopy(default)
    cfg["model"]["path"] = str(tmp_path / "untrained")
    cfg["world"]["size"] = {"block_out_channels": [16, 32]}
    cfg["sites"]["double1_img"]["tokens_per_image"] = None
    cfg["dictionaries"]["sae"]["batch_size"] = 384 * 2 * 256 + 1
    assert "site 'double1_img' holds 196608 (prompts.splits.train 384 images x 2 steps x 256 tokens)" in _epoch_error(
        cfg
    )


def test_world_prompts_must_match_the_toys_world(default, repo, tmp_path):
    """Texture-world prompts on a plain shapes-world toy (or the reverse) would feed its tokenizer
    unknown words: the check reads the model's training.json, or the world section when the workflow trains it."""
    cfg = copy.deepcopy(default)
    cfg["prompts"]["textures"] = False
    with pytest.raises(dcfg.ConfigError, match="toy-textures is the texture world; set prompts.textures: true"):
        dcfg.check(cfg)
    cfg["prompts"]["textures"] = True
    cfg["model"]["path"] = str(repo / "resources/toy-shapes")
    with pytest.raises(
        dcfg.ConfigError, match="toy-shapes is the plain .texture-free. shapes world; set prompts.textures: false"
    ):
        dcfg.check(cfg)
    cfg["model"]["path"] = str(tmp_path / "untrained")  # the workflow will train it from `world`
    cfg["world"] = {"textures": False}
    with pytest.raises(dcfg.ConfigError, match="config.world is the plain .texture-free. shapes world"):
        dcfg.check(cfg, check_model=False)
    cfg["world"] = {"textures": True}
    assert dcfg.check(cfg, check_model=False)["prompts"]["textures"] is True


def test_replicates_are_instances_with_consecutive_seeds(default):
    cfg = copy.deepcopy(default)
    cfg["dictionaries"]["sae"].update(replicates=3, seed=5)
    cfg["dictionaries"]["random"].pop("seed", None)  # the kind's default seed, 0
    cfg["dictionaries"]["random"]["replicates"] = 2
    inst = dcfg.dictionary_instances(cfg)
    assert inst["sae"] == ("sae", 0) and inst["sae-r2"] == ("sae", 2) and inst["random-r1"] == ("random", 1)
    assert "neurons-r1" not in inst and "sae-r3" not in inst
    assert dcfg.instance_config(cfg, "sae")["seed"] == 5 and dcfg.instance_config(cfg, "sae-r2")["seed"] == 7
    assert dcfg.instance_config(cfg, "random-r1")["seed"] == 1  # the kind's default seed 0, plus 1
    assert "replicates" not in dcfg.instance_config(cfg, "sae")
    with pytest.raises(ValueError, match=r"no dictionary 'sae-r3' in the config \(valid: .*sae-r2.*random-r1"):
        dcfg.effective_dictionary(cfg, "sae-r3")


def test_missing_model_folder_names_the_fix(default):
    cfg = copy.deepcopy(default)
    cfg["model"].update(kind="flux", path="/nonexistent/FLUX.1-schnell")
    cfg["prompts"].update(source="file", path=__file__)
    with pytest.raises(dcfg.ConfigError, match="huggingface-cli download"):
        dcfg.check(cfg)


def test_shards_cover_split(default):
    cfg = dcfg.check(default)
    n = cfg["prompts"]["splits"]["interp"]
    size = cfg["prompts"]["shard_size"]
    assert len(dcfg.shard_names(cfg, "interp")) * size >= n > (len(dcfg.shard_names(cfg, "interp")) - 1) * size


def _dry_run(cfg: dict, repo, tmp_path, cli_env) -> subprocess.CompletedProcess:
    """`snakemake -n` in `tmp_path` with `cfg` (its model path made absolute) as the only config file."""
    cfg = {**cfg, "model": {**cfg["model"], "path": str(repo / cfg["model"]["path"])}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    cmd = snakemake_command("-n", "--cores", "1", workdir=tmp_path, configfile=tmp_path / "config.yaml")
    return subprocess.run(cmd, capture_output=True, text=True, env=cli_env)


def test_snakemake_refuses_bad_config_before_running(repo, tmp_path, cli_env, default):
    cfg = copy.deepcopy(default)
    cfg["sites"]["double1_img"]["index"] = 999
    r = _dry_run(cfg, repo, tmp_path, cli_env)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "index 999 does not exist" in out and "valid: 0.." in out
    assert not (tmp_path / "results").exists()


def test_a_sae_beside_sparser_random_directions_is_warned_before_any_job(default, repo, tmp_path, cli_env):
    """Valid, but compared at another budget (`diffdict.budget`): warned by name, site and fix; none where
    every SAE has random directions at its own k or more (a BatchTopK SAE at mean k 4 beside k 8 is fair)."""
    assert dcfg.budget_warnings(dcfg.check(default)) == []
    assert dcfg.budget_warnings(_layered(default, repo, "batch_topk.yaml")) == []
    assert dcfg.budget_warnings(_layered(default, repo, "batch_topk_k4.yaml")) == []
    assert dcfg.budget_warnings(_layered(default, repo, "batch_topk_k4.yaml", "random_k4.yaml", "two_nulls.yaml")) == []
    assert dcfg.budget_warnings(_layered(default, repo, "sae_k12.yaml", "random_k12.yaml")) == []
    warned = dcfg.budget_warnings(_layered(default, repo, "sae_k12.yaml"))
    assert [w.split(":")[0] for w in warned] == ["config.dictionaries.sae"] * 2
    assert "k 12 at site 'double1_img', where random directions keep at most 8 latents per token (random)" in warned[0]
    assert "single1_img" in warned[1] and "with k 12 beside them" in warned[1]
    # the workflow says it before planning, and still plans
    cfg = copy.deepcopy(default)
    update_config(cfg, yaml.safe_load((repo / "benchmarks" / "sae_k12.yaml").read_text()))
    r = _dry_run(cfg, repo, tmp_path, cli_env)
    assert r.returncode == 0, r.stderr
    assert (r.stdout + r.stderr).count("diffdict: config.dictionaries.sae: k 12 at site") == 2


def test_effective_dictionary_fills_defaults_for_the_rerun_trigger():
    import yaml
    from conftest import REPO

    from diffdict.config import effective_dictionary
    from diffdict.dictionaries import HPARAMS

    cfg = yaml.safe_load(open(REPO / "config" / "config.yaml"))
    eff = effective_dictionary(cfg, "sae-r1")
    assert eff["normalize"] == HPARAMS["topk_sae"]["normalize"] == "robust"  # a default, filled in
    assert eff["seed"] == 1 and "replicates" not in eff
    assert "log_every" not in eff and "checkpoint_every" not in eff  # cadence is not a result
