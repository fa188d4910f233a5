"""The schema is the one home of every default; presets and overrides layer on it."""

import inspect

import pytest

from firm_bench.core import config
from firm_bench.core.errors import ConfigError, DamagedFile


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
    assert cfg["loss"]["id_labels"] is False  # no labels, and each loss in the reference's form, resolved once:
    assert cfg["loss"]["form"] == "pairwise" and cfg["resolved"]["loss.form"] == "reference"  # FIRM ran pairwise
    supcon = config.resolve("paper", overrides=["loss.name=supcon"])
    assert supcon["loss"]["form"] == "concat" and config.setting(supcon, "loss.form") == "reference"
    forced = config.resolve("paper", overrides=["loss.form=pairwise"])
    assert forced["loss"]["form"] == "pairwise" and "loss.form" not in forced["resolved"]
    assert config.validate(supcon) == supcon  # a built (recorded) config stays as it is
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


# ---------------------------------------------------------------- non-finite numbers, the momentum that runs


@pytest.mark.parametrize("override, key", [
    ("optim.momentum=nan", "optim.momentum"), ("optim.lr=nan", "optim.lr"), ("model.width=nan", "model.width"),
    ("optim.lr=inf", "optim.lr"), ("loss.tau=.inf", "loss.tau"), ("optim.weight_decay=-.inf", "optim.weight_decay"),
    ("augment.jitter=[0.4, .nan, 0.4, 0.4]", "augment.jitter[1]"), ("features.zoom=nan", "features.zoom"),
    ("optim.momentum_cycle=[0.85, nan]", "optim.momentum_cycle[1]"),
])
def test_non_finite_numbers_are_refused_naming_the_key(override, key):
    """NaN passes every JSON-schema bound (each comparison with NaN is false): refused for every key, named."""
    with pytest.raises(ConfigError) as err:
        config.resolve("smoke", overrides=[override])
    assert f"{key}: " in str(err.value) and "not a finite number" in str(err.value)


def test_every_numeric_schema_key_refuses_nan():
    """Walk the schema: no number key, however bounded, lets NaN through."""
    import math

    def numeric_keys(node, path):
        for key, sub in node.get("properties", {}).items():
            types = sub.get("type")
            types = types if isinstance(types, list) else [types]
            if "object" in types:
                yield from numeric_keys(sub, f"{path}{key}.")
            elif "number" in types:
                yield f"{path}{key}", None
            elif "array" in types and "number" in [sub.get("items", {}).get("type")]:
                yield f"{path}{key}", len(sub["default"] or [0, 0])

    found = list(numeric_keys(config.load_schema(), ""))
    assert len(found) >= 15  # model.width, optim.lr, optim.momentum, loss.tau, augment.*, features.zoom, ...
    for key, n in found:
        value = [math.nan] * n if n else math.nan
        section, name = key.split(".")
        with pytest.raises(ConfigError, match="not a finite number"):
            config.validate({"preset": "smoke", section: {name: value}})


def test_onecycle_refuses_a_momentum_it_would_overwrite():
    """onecycle cycles the momentum (the reference's OneCycleLR): optim.momentum would do nothing there."""
    for value in ("0.0", "0.5"):
        with pytest.raises(ConfigError) as err:
            config.resolve("paper", overrides=[f"optim.momentum={value}"])
        text = str(err.value)
        assert "optim.momentum" in text and "no effect under optim.schedule: onecycle" in text
        assert "optim.momentum_cycle: null" in text  # says what to do
    # the default and the paper preset pass, and label the momentum that runs
    paper = config.resolve("paper")
    assert paper["optim"]["momentum_cycle"] == [0.85, 0.95]  # PyTorch's OneCycleLR defaults, as the reference ran
    assert config.momentum_label(paper) == "cycled 0.95-0.85-0.95"
    held = config.resolve("paper", overrides=["optim.momentum_cycle=null", "optim.momentum=0.5"])
    assert config.momentum_label(held) == "0.5"
    cosine = config.resolve("paper", overrides=["optim.schedule=warmup_cosine", "optim.momentum=0.8"])
    assert config.momentum_label(cosine) == "0.8"
    with pytest.raises(ConfigError, match="optim.momentum_cycle: .* no effect under optim.schedule: warmup_cosine"):
        config.resolve("paper", overrides=["optim.schedule=warmup_cosine", "optim.momentum_cycle=[0.8, 0.9]"])


def test_image_size_is_bounded():
    for key in ("dataset.image_size", "features.image_size"):
        with pytest.raises(ConfigError) as err:
            config.resolve("smoke", overrides=[f"{key}=100000"])
        assert f"{key}: 100000 is greater than the maximum of 1024" in str(err.value)
    assert config.resolve("mini", overrides=["dataset.image_size=1024"])["dataset"]["image_size"] == 1024


def test_a_config_recorded_in_another_format_is_refused_naming_the_file(tmp_path):
    """A recorded config without this firm-bench's format number: refused (delete the run and rerun), never read."""
    now = config.resolve("paper")
    assert now["format"] == config.FORMAT
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    assert config.recorded_differences(now, now, path) == []
    older = {k: v for k, v in now.items() if k != "format"}
    for recorded, was in ((older, "a format before run records were numbered"), ({**now, "format": 1}, "format 1")):
        with pytest.raises(DamagedFile) as err:
            config.recorded_differences(recorded, now, path)
        assert str(path) in str(err.value) and was in str(err.value)
        assert f"delete {tmp_path / 'run'} and rerun" in str(err.value)
    with pytest.raises(ConfigError, match="format"):  # a user config cannot claim another format
        config.resolve("paper", overrides=["format=1"])


def test_auto_and_null_protocol_keys_are_resolved_once_and_recipes_named_by_the_settings():
    mvtec = config.resolve("paper", overrides=["dataset.name=mvtec"])
    assert (mvtec["dataset"]["image_size"], mvtec["features"]["image_size"], mvtec["features"]["zoom"],
            mvtec["optim"]["batching"]) == (256, 32, 1.0, "paired")
    assert mvtec["resolved"] == {"dataset.image_size": None, "features.image_size": None, "features.zoom": None,
                                 "optim.batching": "auto", "loss.form": "reference"}
    assert config.protocol(mvtec) == (256, 32, 1.0, "paired")
    assert config.settings(mvtec)["optim"]["batching"] == "auto" and "resolved" not in config.settings(mvtec)
    # set to what auto gives: the same numbers, but named by the setting, as before
    named = config.resolve("smoke", overrides=["optim.batching=pool"], name_recipe=True)
    assert named["recipe"] == "smoke+optim.batching=pool" and named["optim"] == config.resolve("smoke")["optim"]
    assert config.resume_differences(named, config.resolve("smoke")) == []


def test_a_removed_speed_switch_is_refused_naming_it():
    with pytest.raises(ConfigError) as err:
        config.resolve("smoke", overrides=["speed.predraw=false", "speed.check_loss_every=1", "speed.foo=1"])
    text = str(err.value)
    for key in ("speed.predraw", "speed.check_loss_every"):
        assert f"{key}: this option was removed" in text and "delete the key" in text
    assert "'foo' was unexpected" in text and "predraw" not in text.split("allowed keys:")[1]


@pytest.mark.parametrize("content, found", [(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "byte 0 is b'\\x89'"),
                                            (b"optim:\n  lr: 0.1\n\xff\xfe", "byte 17 is b'\\xff'")])
def test_a_binary_config_file_is_refused_in_one_line_naming_it(tmp_path, capsys, content, found):
    from firm_bench.cli import main

    path = tmp_path / "cfg.yaml"
    path.write_bytes(content)
    with pytest.raises(config.ConfigError) as info:
        config.resolve("smoke", config_file=path)
    assert str(info.value) == (f"config {str(path)!r} is not a text (UTF-8 YAML) file: {found}; give the YAML "
                               "config file (a binary file, a checkpoint or an image, cannot be one)")
    assert main(["config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a text (UTF-8 YAML) file" in err


def test_a_config_yaml_error_is_one_line(tmp_path, capsys):
    from firm_bench.cli import main

    path = tmp_path / "cfg.yaml"
    path.write_text("optim:\n  lr: [0.1\n")
    assert main(["config", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot read config {str(path)!r}: " in err, err


def test_key_roles_come_from_the_schema_annotations():
    """x-roles in run.schema.yaml say once which keys are recipe, local or pack-varying; a section gives its keys."""
    defaults = config.leaves(config.schema_defaults())
    for role in config.ROLES:
        keys = config.keys_with(role)
        assert keys and all(any(k == d or d.startswith(k + ".") for d in defaults) for k in keys), role
    assert "scores" in config.keys_with("not-recipe") and "loss.tau" not in config.keys_with("not-recipe")
    assert "speed" in config.keys_with("local") and "optim" not in config.keys_with("local")
    cfg = config.resolve("smoke")
    assert config.resume_view(cfg).keys() == set(cfg) - set(config.keys_with("local"))
    threads, lr = config.resolve("smoke", overrides=["threads=3"]), config.resolve("smoke", overrides=["optim.lr=0.3"])
    assert config.resume_differences(cfg, threads) == [] and config.resume_differences(cfg, lr)
    assert config.recipe_differences(threads, cfg) == {} and config.recipe_differences(lr, cfg) == {"optim.lr": 0.3}
    with pytest.raises(ValueError, match="unknown config key role 'recip'; valid: not-recipe, local, pack-varying"):
        config.keys_with("recip")
