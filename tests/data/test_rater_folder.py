"""The multi-rater sources: a folder of raters' label files (any dimension) and the lidc string."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noisyseg.data import Geometry, RaterCase, load_raters, read_rater_folder, write_image
from noisyseg.errors import ConfigError, DataError


def square(n: int, lo: int, hi: int, value: int = 1) -> np.ndarray:
    m = np.zeros((n, n), np.uint8)
    m[lo:hi, lo:hi] = value
    return m


def write_raters(root, masks: dict[str, dict[str, np.ndarray]], *, spacing=None, suffix=".nii.gz"):
    for rater, cases in masks.items():
        (root / rater).mkdir(parents=True, exist_ok=True)
        for case, m in cases.items():
            geom = None if spacing is None else Geometry.from_spacing(m.shape, spacing)
            write_image(root / rater / f"{case}{suffix}", m, geom)
    return root


def test_cases_raters_and_spacing(tmp_path):
    root = write_raters(tmp_path / "r", {
        "bob": {"c1": square(8, 2, 6), "c2": square(8, 1, 7)},
        "alice": {"c1": square(8, 2, 5), "c2": square(8, 1, 7)},
        "carol": {"c2": square(8, 0, 8)},
    }, spacing=(0.5, 0.7))
    cases = read_rater_folder(root)
    assert [c.case_id for c in cases] == ["c1", "c2"]
    c1, c2 = cases
    assert c1.reader_ids == ("alice", "bob") and c2.reader_ids == ("alice", "bob", "carol")
    assert c1.masks.dtype == bool and c1.masks.shape == (2, 8, 8)
    assert [int(m.sum()) for m in c1.masks] == [9, 16]  # alice 3 x 3, bob 4 x 4
    assert c1.spacing == pytest.approx((0.5, 0.7))
    # c2: alice and bob draw 6 x 6, carol 8 x 8; at level 0.5 the consensus is the 6 x 6
    assert int(c2.consensus().sum()) == 36 and int(c2.consensus(1 / 3).sum()) == 64
    assert [c.case_id for c in read_rater_folder(root, min_readers=3)] == ["c2"]


def test_label_picks_one_structure(tmp_path):
    two = square(8, 1, 7, 1)
    two[3:5, 3:5] = 2
    root = write_raters(tmp_path / "r", {"a": {"c": two}, "b": {"c": two}})
    (case,) = read_rater_folder(root, label=2)
    assert [int(m.sum()) for m in case.masks] == [4, 4]
    (case,) = read_rater_folder(root)  # every non-zero voxel
    assert [int(m.sum()) for m in case.masks] == [36, 36]


def test_three_d_and_png(tmp_path):
    vol = np.zeros((3, 6, 6), np.uint8)
    vol[1, 2:4, 2:4] = 1
    root = write_raters(tmp_path / "v", {"a": {"x": vol}, "b": {"x": vol}}, spacing=(2.5, 0.8, 0.8))
    (case,) = read_rater_folder(root)
    assert case.masks.shape == (2, 3, 6, 6) and case.spacing == pytest.approx((2.5, 0.8, 0.8))
    png = write_raters(tmp_path / "p", {"a": {"x": square(6, 1, 3) * 255},
                                         "b": {"x": square(6, 1, 4) * 255}}, suffix=".png")
    (case,) = read_rater_folder(png)
    assert [int(m.sum()) for m in case.masks] == [4, 9] and case.spacing == (1.0, 1.0)


def test_refusals_name_the_file(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        read_rater_folder(tmp_path / "missing")
    one = write_raters(tmp_path / "one", {"a": {"c": square(6, 1, 3)}})
    with pytest.raises(DataError, match="at least two"):
        read_rater_folder(one)
    apart = write_raters(tmp_path / "apart", {"a": {"c1": square(6, 1, 3)}, "b": {"c2": square(6, 1, 3)}})
    with pytest.raises(DataError, match="no case outlined by at least 2 raters"):
        read_rater_folder(apart)
    grids = write_raters(tmp_path / "grids", {"a": {"c": square(6, 1, 3)}, "b": {"c": square(8, 1, 3)}})
    with pytest.raises(DataError, match=r"b[/\\]c\.nii\.gz"):
        read_rater_folder(grids)
    twice = write_raters(tmp_path / "twice", {"a": {"c": square(6, 1, 3)}, "b": {"c": square(6, 1, 3)}})
    write_image(twice / "a" / "c.npy", square(6, 1, 3))
    with pytest.raises(DataError, match="two files of case 'c'"):
        read_rater_folder(twice)
    with pytest.raises(ConfigError, match="min_readers"):
        read_rater_folder(twice, min_readers=1)
    with pytest.raises(ConfigError, match="label"):
        read_rater_folder(twice, label=-1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_fuzz_a_damaged_label_file_is_one_line(tmp_path_factory, data):
    root = write_raters(tmp_path_factory.mktemp("fz"), {"a": {"c": square(6, 1, 3)},
                                                         "b": {"c": square(6, 1, 3)}})
    (root / "b" / "c.nii.gz").write_bytes(data)
    with pytest.raises(DataError) as exc:
        read_rater_folder(root)
    assert "\n" not in str(exc.value) and "c.nii.gz" in str(exc.value)


def test_load_raters_strings(tmp_path):
    root = write_raters(tmp_path / "r", {"a": {"c": square(6, 1, 3, 2)}, "b": {"c": square(6, 1, 4, 2)}})
    (case,) = load_raters(f"raters:{root},label=2")
    assert isinstance(case, RaterCase) and case.n_readers == 2
    for spec, match in ((f"raters:{root},lable=2", "unknown option 'lable'"),
                        (f"raters:{root},label=x", "not a valid int"),
                        ("raters", "needs a path"),
                        ("lidc:limit=-1", "limit"),
                        ("synthetic-ct", "not a multi-rater source")):
        with pytest.raises(ConfigError, match=match):
            load_raters(spec)


def test_load_raters_lidc_options_reach_the_reader(tmp_path, monkeypatch):
    from noisyseg.data import raters

    seen = {}
    monkeypatch.setattr(raters, "iter_nodules", lambda db, **kw: seen.update(db=db, **kw) or iter([]))
    load_raters("lidc")
    assert seen == {"db": None, "min_readers": 3}
    load_raters(f"lidc:{tmp_path / 'x.sqlite'},min_readers=4,min_diameter_mm=3.5,limit=7")
    assert seen == {"db": str(tmp_path / "x.sqlite"), "min_readers": 4, "min_diameter_mm": 3.5,
                    "limit": 7}
