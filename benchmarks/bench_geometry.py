"""What the 2-D OpenCV paths inside ``noisyseg.corrupt._geometry`` buy the error models.

Run: ``python benchmarks/bench_geometry.py [--n 300] [--rounds 4]``; prints JSON.
Each path (bounding boxes, exact distances, the 3x3 dilation of ``neighbour``) is swapped
for the n-D code it shortcuts (NumPy projections, SciPy's ``distance_transform_edt`` and
``binary_dilation``), and every model that uses it runs both ways on the same masks,
interleaved call by call in one process, so a shared VM's drifting speed cancels out.
One core: OpenCV, BLAS and OpenMP are limited to one thread before any work.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402

cv2.setNumThreads(1)

from _machine import cpu_model  # noqa: E402

from noisyseg.corrupt import ERROR_MODELS, models  # noqa: E402
from noisyseg.corrupt import _geometry as geometry  # noqa: E402
from noisyseg.data import synthetic_echo_masks  # noqa: E402

STRENGTH = {"random_flip": 0.1, "merge": 0.3, "omit": 0.3}
USERS = {"bbox": ["dilate", "erode", "shift", "merge", "omit"],
         "distance_inside": ["merge", "omit"], "neighbour dilation": ["merge"]}


def _bbox_nd(binary: np.ndarray, margin: Any = 0) -> Any:
    b = np.asarray(binary)
    tight = geometry.tight_box(b)
    if tight is None:
        return None
    return geometry.grown(tight, margin, b.shape) if margin else tight


def _distance_inside_nd(binary: np.ndarray, *, spacing: Any = None, precise: bool = True) -> np.ndarray:
    b = np.asarray(binary, dtype=bool)
    if b.all():
        return np.full(b.shape, 1e9, dtype=np.float32)
    return ndi.distance_transform_edt(b, sampling=spacing).astype(np.float32)


class _Cv2WithoutSmallDilation:
    """``cv2`` whose dilation by a 3x3 kernel (``neighbour``'s) is SciPy's."""

    def __getattr__(self, name: str) -> Any:
        return getattr(cv2, name)

    @staticmethod
    def dilate(src: np.ndarray, kernel: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
        if kernel.shape == (3, 3) and not args and not kwargs:
            return ndi.binary_dilation(src.astype(bool), kernel.astype(bool)).view(np.uint8)
        return cv2.dilate(src, kernel, *args, **kwargs)


@contextmanager
def _nd_path(which: str) -> Iterator[None]:
    saved = geometry.bbox, models.bbox, geometry.distance_inside, geometry.cv2
    try:
        if which == "bbox":
            geometry.bbox = models.bbox = _bbox_nd  # type: ignore[assignment]
        elif which == "distance_inside":
            geometry.distance_inside = _distance_inside_nd  # type: ignore[assignment]
        else:
            geometry.cv2 = _Cv2WithoutSmallDilation()  # type: ignore[assignment]
        yield
    finally:
        geometry.bbox, models.bbox, geometry.distance_inside, geometry.cv2 = saved


def _compare(which: str, name: str, masks: np.ndarray, rounds: int) -> dict[str, float]:
    model, s = ERROR_MODELS[name], STRENGTH.get(name, 3.0)
    pc = time.perf_counter
    fast = slow = 0.0

    def timed(i: int, x: np.ndarray) -> float:
        t0 = pc()
        model(x, s, rng=np.random.default_rng(i))
        return pc() - t0

    for r in range(rounds):
        for i, x in enumerate(masks):
            for nd in ((False, True) if (i + r) % 2 else (True, False)):
                if nd:
                    with _nd_path(which):
                        slow += timed(i, x)
                else:
                    fast += timed(i, x)
    n = rounds * len(masks)
    return {"opencv_masks_per_s": round(n / fast, 1), "nd_masks_per_s": round(n / slow, 1),
            "speedup": round(slow / fast, 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300, help="masks per round")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=4)
    args = ap.parse_args()
    masks = synthetic_echo_masks(n=args.n, size=args.size, seed=0)
    out: dict[str, Any] = {"machine": {"cpu": cpu_model(), "cores_used": 1,
                                       "python": platform.python_version()},
                           "mask": f"{args.size}x{args.size}, 4 classes (synthetic-echo)",
                           "opencv_path_vs_nd": {}}
    for which, names in USERS.items():
        for name in names:
            out["opencv_path_vs_nd"][f"{which}: {name}"] = _compare(which, name, masks, args.rounds)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
