"""Shared validators (one place, specific errors naming the bad value)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from noisyseg.errors import ConfigError, DataError

__all__ = [
    "check_fraction",
    "check_image",
    "check_label_mask",
    "check_rng",
    "check_seed",
    "check_threads",
]

#: Seeds are 0 <= seed < 2**32: what every generator noisyseg hands a seed to accepts
#: (NumPy's SeedSequence, torch.manual_seed, scikit-learn's random_state).
MAX_SEED = 2**32 - 1


def check_label_mask(mask: np.ndarray, *, name: str = "mask", ndim: int = 2) -> np.ndarray:
    """Return ``mask`` as an integer array of ``ndim`` dimensions or raise :class:`DataError`."""
    arr = np.asarray(mask)
    if arr.ndim != ndim:
        raise DataError(f"{name}: expected a {ndim}-D label mask, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer) and arr.dtype != bool:
        raise DataError(f"{name}: expected integer labels, got dtype {arr.dtype}")
    return arr


def check_image(image: np.ndarray, *, name: str = "image") -> np.ndarray:
    """Return ``image`` as float32 or raise :class:`DataError` for NaN/inf values."""
    arr = np.asarray(image, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name}: image contains NaN or infinite values")
    return arr


def check_labels_in(mask: np.ndarray, n_classes: int, *, name: str = "mask") -> None:
    """Raise :class:`DataError` if ``mask`` holds a label outside ``0..n_classes-1``."""
    if mask.size == 0:
        return
    lo, hi = int(mask.min()), int(mask.max())
    if lo < 0 or hi >= n_classes:
        bad = sorted(int(v) for v in np.unique(mask) if v < 0 or v >= n_classes)
        raise DataError(
            f"{name}: labels {bad[:5]} are outside the declared classes 0..{n_classes - 1}"
        )


def check_fraction(value: float, *, name: str) -> float:
    """Return ``value`` if it lies in [0, 1], else raise :class:`ConfigError`."""
    if not (0.0 <= float(value) <= 1.0):
        raise ConfigError(f"{name}: expected a value in [0, 1], got {value}")
    return float(value)


def check_rng(rng: object) -> np.random.Generator:
    """Return ``rng`` if it is a :class:`numpy.random.Generator`, else raise ``TypeError``."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng: expected numpy.random.Generator, got {type(rng).__name__}")
    return rng


def check_seed(value: object, *, name: str = "seed") -> int:
    """Return ``value`` as a seed (an integer in ``0..2**32 - 1``) or raise :class:`ConfigError`.

    >>> check_seed(7)
    7
    >>> check_seed(-1)
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: seed: expected an integer from 0 to 4294967295, got -1
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or \
            not 0 <= int(value) <= MAX_SEED:
        raise ConfigError(f"{name}: expected an integer from 0 to {MAX_SEED}, got {value!r}")
    return int(value)


def check_threads(value: object, *, name: str = "threads") -> int | None:
    """Return ``value`` as a number of CPU threads (``None``: all cores) or raise
    :class:`ConfigError` for anything but a positive integer.

    >>> check_threads(None) is None
    True
    >>> check_threads(0)
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: threads: expected a positive number of threads ...
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise ConfigError(f"{name}: expected a positive number of threads (leave it out for all "
                          f"cores), got {value!r}")
    return int(value)


def parse_classes(values: Iterable[str | int] | None, class_names: tuple[str, ...]) -> tuple[int, ...] | None:
    """Map class names or indices to foreground label indices; ``None`` means all foreground."""
    if values is None:
        return None
    out: list[int] = []
    for v in values:
        s = str(v).strip()
        if s.lstrip("-").isdigit():
            idx = int(s)
        elif s in class_names:
            idx = class_names.index(s)
        else:
            raise ConfigError(f"classes: unknown class {s!r}; expected one of {list(class_names[1:])} "
                              f"or an index 1..{len(class_names) - 1}")
        if not 1 <= idx < len(class_names):
            raise ConfigError(f"classes: class index {idx} is not a foreground class "
                              f"(1..{len(class_names) - 1})")
        out.append(idx)
    return tuple(sorted(set(out)))
