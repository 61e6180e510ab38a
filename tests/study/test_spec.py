import pytest

from noisyseg.errors import ConfigError
from noisyseg.study import TrialConfig, load_spec
from noisyseg.study.spec import SPEC_DIR


def test_grid_expands_normalises_and_deduplicates(tiny_spec):
    spec = load_spec(tiny_spec)
    trials = spec.trials()
    # grid 1: 2 models x 2 seeds; grid 2: (none, loss) x (refurbish no/yes) x 2 seeds, and
    # refurbishment without a detector collapses into the no-detector run: 3 arms x 2 seeds
    assert spec.grid_points() == 4 + 8
    assert len(trials) == 4 + 6
    assert len({t.trial_id for t in trials}) == len(trials)
    control = [t for t in trials if t.corrupt is None]
    assert len(control) == 2 and {t.seed for t in control} == {0, 1}
    assert not any(t.audit.refurbish and not t.audit.detectors for t in trials)
    # the trial seed drives the training seed
    assert all(t.train.seed == t.seed for t in trials)


def test_ids_are_stable_and_change_only_with_the_config(tiny_spec):
    a = {t.trial_id: t for t in load_spec(tiny_spec).trials()}
    b = {t.trial_id for t in load_spec(tiny_spec).trials()}
    assert set(a) == b
    tiny_spec.write_text(tiny_spec.read_text().replace("strength: 2", "strength: 3"))
    c = {t.trial_id for t in load_spec(tiny_spec).trials()}
    changed = set(a) - c
    assert changed and all(a[i].corrupt is not None and a[i].corrupt.model == "dilate"
                           for i in changed)


def test_equivalent_configs_share_an_id():
    base = {"data": "synthetic-echo:n=20,size=32", "seed": 3, "train": {"epochs": 2}}
    ids = {TrialConfig.from_dict(base | extra).trial_id for extra in (
        {}, {"corrupt": None}, {"corrupt": "none"},
        {"corrupt": {"model": "natural", "target_dice": 0.9, "fraction": 0}},
        {"audit": {"detectors": "none", "refurbish": True}})}
    assert len(ids) == 1


@pytest.mark.parametrize("edit,match", [
    (("epochs: 2", "epoch: 2"), r"train\.epoch: unknown field"),
    (("corrupt.model", "corrupt.modle"), r"corrupt\.modle: unknown field"),
    (("corrupt.model: [none, natural]", "corrupt.model: [none, wobble]"), "unknown error model"),
    (("[none, [loss]]", "[none, [magic]]"), "unknown detector 'magic'"),
    (("seed: [0, 1]\n  - corrupt", "seed: 0\n  - corrupt"), r"grid\.seed: expected a non-empty list"),
    (("train: {", "train: {model: resnet, "), r"train\.model: unknown network"),
    (("name: tiny", "name: [tiny"), "not valid YAML"),
    (("name: tiny", "nmae: tiny"), "nmae: unknown top-level field"),
    (("fraction: 0.5", "fraction: 1.5"), r"corrupt\.fraction"),
    (("classes: [lv_cavity]", "classes: [lv_cavity], options: {radius: 2}"),
     r"corrupt\.options\.radius: not an option of dilate"),
    (("flag_value: 0.5}", "flag_value: 0.5, mode: erase}"), "audit.mode: expected one of"),
])
def test_bad_specs_name_the_field(tiny_spec, edit, match):
    text = tiny_spec.read_text()
    assert edit[0] in text
    tiny_spec.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ConfigError, match=match):
        load_spec(tiny_spec)


def test_shipped_specs_are_valid_and_sized_as_documented():
    sizes = {p.stem: len(load_spec(p).trials()) for p in SPEC_DIR.glob("*.yaml")}
    # heller2018: 3 archs x (control + 3 modes x 3 targets) x 5 repeats
    assert sizes["heller2018"] == 3 * 10 * 5
    assert sizes["heller2018-small"] == 3 * 10 * 3  # the reduced one the README's table ran
    assert sizes["heller2018-ct"] == 3 * 3  # control, natural, random_flip x 3 seeds, volumes
    assert sizes["heller2018-ct3d"] == 3 * 3  # the same with a 3-D U-Net
    assert sizes["heller2018-ct-wce"] == 3 * 3  # heller2018-ct with study A's loss
    assert sizes["heller2018-ct3d-wce"] == 3 * 2  # heller2018-ct3d with it, 2 seeds
    assert {t.train.loss for t in load_spec(SPEC_DIR / "heller2018-ct-wce.yaml").trials()} == {"wce"}
    assert all(t.volumes.dims == 3 for t in load_spec(SPEC_DIR / "heller2018-ct3d.yaml").trials())
    # islam2026: (3 types x 9 levels x 5 arms + 5 control arms) x 3 seeds
    assert sizes["islam2026"] == (3 * 9 * 5 + 5) * 3
    assert sizes["quick"] == 4 * 3 + 2 * 3


def test_nested_grid_fields_and_train_seed(tiny_spec):
    text = tiny_spec.read_text().replace("    seed: [0, 1]\n  - corrupt",
                                         "    seed: [0, 1]\n    train.model_options.width: [4, 8]"
                                         "\n  - corrupt", 1)
    tiny_spec.write_text(text)
    trials = load_spec(tiny_spec).trials()
    widths = {t.train.model_options["width"] for t in trials if t.labels.get("seed") is not None}
    assert widths == {4, 8} and len(trials) == 8 + 6
    tiny_spec.write_text(text.replace("train: {", "train: {seed: 3, "))
    with pytest.raises(ConfigError, match="train.seed: set the trial's seed at the top level"):
        load_spec(tiny_spec)


def test_unknown_spec_name_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match="quick"):
        load_spec("no-such-spec")
