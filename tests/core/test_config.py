"""The schema is the one home of every default; presets and overrides layer on it."""

import inspect

import pytest

from firm_bench.core import config
from firm_bench.core.errors import ConfigError


def test_defaults_cover_every_schema_leaf():
    schema = config.load_schema()
    defaults = config.schema_defaults()

    def walk(node, value, path):
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{path}{key} has no description"
            assert "default" in sub, f"{path}{key} has no default"
            if sub.get("type") == "object":
                walk(sub, value[key], f"{path}{key}.")
            else:
                assert key in value

    walk(schema, defaults, "")


def test_presets_validate_and_name_themselves():
    for name in config.list_presets():
        cfg = config.resolve(name)
        assert cfg["preset"] == name


def test_paper_preset_is_the_paper_recipe():
    cfg = config.resolve("paper")
    assert cfg["optim"]["epochs"] == 2000 and cfg["optim"]["batch_size"] == 32
    assert cfg["optim"]["lr"] == 0.01 and cfg["optim"]["momentum"] == 0.9
    assert cfg["optim"]["weight_decay"] == 3e-4 and cfg["loss"]["tau"] == 0.2
    assert cfg["model"]["bn_momentum"] == 0.9  # the reference code's value, kept to be faithful
    assert cfg["optim"]["schedule"] == "onecycle" and cfg["checkpoint"]["select"] == "last"
    assert cfg["augment"]["crop_scale"] == [0.25, 1.0] and cfg["augment"]["blur_p"] == 0.75
    assert cfg["model"]["head_layers"] == 8 and cfg["model"]["head_hidden"] == 1024


def test_overrides_are_parsed_as_yaml():
    cfg = config.resolve("smoke", overrides=["optim.lr=0.5", "features.angles=[0, 180]", "dataset.root=null"])
    assert cfg["optim"]["lr"] == 0.5 and cfg["features"]["angles"] == [0, 180]
    # PyYAML reads 1e-3 (no dot) as a string; overrides take it as the number meant
    assert config.resolve("smoke", overrides=["optim.lr=1e-3"])["optim"]["lr"] == 0.001
    assert config.resolve("smoke", overrides=["dataset.root=/data/x"])["dataset"]["root"] == "/data/x"


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("loss.name=frim", "loss.name: unknown value 'frim'; valid: ntxent, supcon, supcon_star, firm"),
        ("optim.lr=-1", "optim.lr"),
        ("optim.lrr=1", "allowed keys"),
        ("loss.form=triple", "loss.form"),
        ("dataset.name=imagenet", "dataset.name: unknown value 'imagenet'"),
        ("scores.names=[cos, nope]", "scores.names: unknown value 'nope'"),
        ("features.angles=[90, 0]", "must start with 0"),
        ("device=gpu", "device"),
        ("loss.form=symmetric", "loss.form"),
        ("loss.id_labels=true", "loss.id_labels: true needs dataset.cls: all"),
    ],
)
def test_bad_values_name_the_key(override, fragment):
    with pytest.raises(ConfigError) as err:
        config.resolve("smoke", overrides=[override])
    assert fragment in str(err.value)


def test_loss_form_and_id_labels():
    cfg = config.resolve("paper")
    assert cfg["loss"]["form"] == "reference" and cfg["loss"]["id_labels"] is False  # the reference's forms, no labels
    assert config.resolve("paper", overrides=["loss.form=pairwise"])["loss"]["form"] == "pairwise"
    labelled = config.resolve("paper", overrides=["dataset.cls=all", "loss.id_labels=true"])
    assert labelled["loss"]["id_labels"] is True and labelled["loss"]["name"] == "firm"
    with pytest.raises(ConfigError) as err:
        config.resolve("paper", overrides=["dataset.cls=all", "loss.id_labels=true", "loss.name=supcon"])
    assert "loss.id_labels: true needs loss.name: firm" in str(err.value) and "'supcon'" in str(err.value)
    with pytest.raises(ConfigError) as err:  # both problems named at once
        config.resolve("paper", overrides=["loss.id_labels=true", "loss.name=ntxent"])
    assert "loss.name: firm" in str(err.value) and "dataset.cls: all" in str(err.value)


def test_bad_override_syntax_and_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="section.key=value"):
        config.resolve(overrides=["optim.lr"])
    with pytest.raises(ConfigError, match="does not exist"):
        config.resolve(config_file=tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="unknown preset 'papr'; valid: "):
        config.resolve("papr")


def test_config_file_layer(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("loss:\n  name: ntxent\noptim:\n  epochs: 3\n")
    cfg = config.resolve("smoke", config_file=f, overrides=["optim.epochs=4"])
    assert cfg["loss"]["name"] == "ntxent" and cfg["optim"]["epochs"] == 4


def test_library_defaults_equal_the_schema():
    """Where a function signature repeats a default, it must equal the schema's."""
    from firm_bench.method.augment import AugmentConfig
    from firm_bench.method.losses import get_loss

    d = config.schema_defaults()
    assert inspect.signature(get_loss).parameters["tau"].default == d["loss"]["tau"]
    assert inspect.signature(get_loss).parameters["form"].default == d["loss"]["form"]
    aug = AugmentConfig()
    assert list(aug.crop_scale) == d["augment"]["crop_scale"]
    assert list(aug.crop_ratio) == d["augment"]["crop_ratio"]
    assert list(aug.jitter) == d["augment"]["jitter"]
    assert list(aug.blur_sigma) == d["augment"]["blur_sigma"]
    assert (aug.jitter_p, aug.blur_kernel, aug.blur_p) == (
        d["augment"]["jitter_p"], d["augment"]["blur_kernel"], d["augment"]["blur_p"])
    AugmentConfig.from_dict(d["augment"])  # every schema key is accepted
