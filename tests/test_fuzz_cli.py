"""Fuzz the commands' options: any value gives success or one line and exit 2, never a
traceback, and a failed command leaves nothing behind.

The budget is small in CI; ``pytest tests/test_fuzz_cli.py --fuzz-examples 500`` (or
``NOISYSEG_FUZZ_EXAMPLES=500``) runs more.
"""

import contextlib
import io
import math
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from .conftest import fuzz_settings, run_cli

_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(
        lambda v: "nan" if math.isnan(v) else repr(v)),
    st.integers(-(2**70), 2**70).map(str), _TEXT)


def _option(flag, values):
    return st.one_of(st.just([]), values.map(lambda v: [flag, v]))


def _run(args, out: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = run_cli([*args, "--out", str(out), "--no-progress"])
    return (0 if code is None else code), err.getvalue()


def _check_contract(code: int, err: str, root: Path, out: Path) -> None:
    assert code in (0, 2), err
    assert "Traceback" not in err, err
    if code == 2:
        lines = [ln for ln in err.strip().splitlines() if not ln.startswith("WARNING")]
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert not out.exists(), "a failed command left its output"
    else:
        assert out.is_dir()
    left = [p.name for p in root.iterdir() if p.name.startswith(".")]
    assert left == [], f"temporary files left behind: {left}"


def _run_checked(args: list[str], parts) -> None:
    """Run ``args`` plus the drawn option ``parts`` into a fresh folder; check the contract."""
    args = [*args, *(v for p in parts for v in p)]
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        out = root / "out"
        code, err = _run(args, out)
        _check_contract(code, err, root, out)


corrupt_args = st.tuples(
    _option("--model", st.one_of(st.sampled_from(["natural", "dilate", "erode", "random_flip",
                                                  "choppy", "merge"]), _TEXT)),
    _option("--target-dice", _NUMBER), _option("--strength", _NUMBER),
    _option("--fraction", _NUMBER), _option("--seed", _NUMBER),
    _option("--classes", st.one_of(st.sampled_from(["1", "lv_cavity", "0", "9"]), _TEXT)),
    _option("--option", st.one_of(st.sampled_from(["points=4", "points=-1", "x=1", "="]), _TEXT)),
    _option("--format", st.one_of(st.sampled_from(["nii.gz", "png", "npy", "mha"]), _TEXT)),
    st.sampled_from([[], ["--slicewise"], ["--volumetric"]]),
    _option("--data", st.sampled_from(["synthetic-echo:n=6,size=24", "synthetic-echo:n=0",
                                       "synthetic-ct:n=2,size=16,slices=4", "nnunet:/nope",
                                       "synthetic-echo:size=-3", "synthetic-echo:n=x"])),
)


@fuzz_settings(25)
@given(corrupt_args)
def test_corrupt_options(parts):
    _run_checked(["corrupt", "--data", "synthetic-echo:n=6,size=24"], parts)


train_args = st.tuples(
    _option("--epochs", st.sampled_from(["0", "1", "-1", "x", "1.5"])),
    _option("--batch-size", st.one_of(st.sampled_from(["0", "2", "-4"]), _TEXT)),
    _option("--lr", _NUMBER), _option("--seed", _NUMBER), _option("--threads", _NUMBER),
    _option("--loss", st.one_of(st.sampled_from(["ce", "wce", "dicece"]), _TEXT)),
    _option("--width", st.sampled_from(["0", "2", "-1"])),
    _option("--patch-size", st.one_of(st.sampled_from(["16,16", "8x8", "4,4", "16"]), _TEXT)),
    _option("--steps-per-epoch", st.sampled_from(["0", "1", "-2"])),
    _option("--spacing", st.one_of(st.sampled_from(["median", "1,1", "0,1"]), _TEXT)),
    _option("--slice-size", st.sampled_from(["0", "16", "-8"])),
    _option("--dims", st.sampled_from(["2", "3", "4", "0"])),
    _option("--model-option", st.one_of(st.sampled_from(["depth=1", "depth=9", "nope=1"]), _TEXT)),
)


@fuzz_settings(12)
@given(train_args, st.sampled_from(["train", "audit"]))
def test_train_and_audit_options(parts, command):
    args = [command, "--data", "synthetic-echo:n=6,size=24", "--epochs", "1", "--width", "4",
            "--model-option", "depth=2", "--batch-size", "4", "--steps-per-epoch", "1"]
    _run_checked(args, parts)
