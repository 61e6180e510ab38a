"""Presets fitted to real raters: the shipped one, the file's checks, and how --like applies."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noisyseg.corrupt import PRESETS, Preset, apply_preset, get_model, read_preset, write_preset
from noisyseg.errors import ConfigError, DataError
from noisyseg.study.spec import CorruptSpec

MINE = Preset("mine", 0.8, {
    "natural": {"volumetric": {"options": {"scale": 3.0, "bias": 0.1}, "realism": 0.2},
                "slicewise": {"options": {"points": 6}, "realism": 0.3}},
    "dilate": {"slicewise": {"options": {}, "realism": 1.5}}})


def test_the_shipped_lidc_preset():
    assert PRESETS == ("lidc",)
    p = read_preset("lidc")
    assert p.name == "lidc" and p.source.startswith("lidc")
    assert p.command.startswith("noisyseg raters --data lidc")
    assert 0.7 < p.target_dice < 0.9  # LIDC's readers: mean Dice about 0.78
    assert p.extra["n_cases"] > 1000
    for model in ("natural", "choppy", "boundary", "random_flip", "dilate", "erode"):
        for mode, fit in p.fits[model].items():
            assert mode in get_model(model).modes and np.isfinite(fit["realism"])
    # its best model is the one its realism says
    best = min(((m, mode) for m in p.fits for mode in p.fits[m]),
               key=lambda k: p.fits[k[0]][k[1]]["realism"])
    assert p.best_mode(best[0]) == best[1]


def test_apply_preset_mode_options_and_target():
    assert apply_preset(MINE, "natural", ndim=3) == ("volumetric", {"scale": 3.0, "bias": 0.1}, 0.8)
    assert apply_preset(MINE, "natural", ndim=3, mode="slicewise") == ("slicewise", {"points": 6}, 0.8)
    assert apply_preset(MINE, "natural", ndim=2) == (None, {"points": 6}, 0.8)
    # what is given wins
    assert apply_preset(MINE, "natural", ndim=3, options={"scale": 5.0}, target_dice=0.9) == \
        ("volumetric", {"scale": 5.0, "bias": 0.1}, 0.9)
    assert apply_preset(MINE, "natural", ndim=3, strength=1.0)[2] is None
    with pytest.raises(ConfigError, match="holds no fit of 'choppy'"):
        apply_preset(MINE, "choppy", ndim=3)
    with pytest.raises(ConfigError, match="in mode 'volumetric'"):
        apply_preset(MINE, "dilate", ndim=3, mode="volumetric")
    with pytest.raises(ConfigError, match="neither a shipped preset"):
        apply_preset("nosuch", "natural", ndim=3)


def test_write_then_read_round_trips(tmp_path):
    out = write_preset(tmp_path / "p.json", MINE)
    back = read_preset(out)
    assert back == MINE
    assert [p.name for p in tmp_path.iterdir()] == ["p.json"]  # no temporary file left
    bad = Preset("bad", 0.8, {"natural": {"volumetric": {"options": {"nope": 1}}}})
    with pytest.raises(DataError, match=r"no option\(s\) \['nope'\]"):
        write_preset(tmp_path / "bad.json", bad)
    assert not (tmp_path / "bad.json").exists()


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.update(format_version=2), "format_version 2"),
    (lambda d: d.update(target_dice=1.5), "target_dice"),
    (lambda d: d.update(fits={}), "fits"),
    (lambda d: d["fits"].update(nosuch={"slicewise": {"options": {}}}), "unknown error model"),
    (lambda d: d["fits"]["natural"].update(sideways={"options": {}}), "got 'sideways'"),
    (lambda d: d["fits"]["natural"]["slicewise"].update(options=[1]), "expected an object"),
])
def test_bad_files_are_one_line_naming_the_file(tmp_path, edit, match):
    doc = MINE.to_dict()
    edit(doc)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=match) as exc:
        read_preset(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.one_of(st.binary(max_size=200),
                      st.recursive(st.none() | st.booleans() | st.floats() | st.text(max_size=5),
                                   lambda c: st.lists(c, max_size=3)
                                   | st.dictionaries(st.text(max_size=8), c, max_size=3),
                                   max_leaves=10).map(lambda v: json.dumps(v).encode())))
def test_fuzz_read_preset(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("p") / "preset.json"
    path.write_bytes(data)
    with pytest.raises(DataError) as exc:
        read_preset(path)
    assert "\n" not in str(exc.value)


def test_study_spec_like_sets_the_target_and_keeps_old_ids():
    spec = CorruptSpec(model="natural", like="lidc")
    assert spec.target_dice == pytest.approx(read_preset("lidc").target_dice)
    assert CorruptSpec(model="natural", like="lidc", target_dice=0.9).target_dice == 0.9
    with pytest.raises(ConfigError, match="corrupt.like"):
        CorruptSpec(model="natural", like="nosuch")
    from noisyseg.study import load_spec

    trial = next(t for t in load_spec("quick").trials() if t.corrupt is not None)
    assert trial.corrupt.like is None and "like" not in trial.to_dict()["corrupt"]
    # volumetric options are options of the model too
    assert CorruptSpec(model="natural", target_dice=0.9, options={"scale": 4.0}).options == {"scale": 4.0}
