"""What the commands promise when the file system, the user or the network fails them: one
line and exit 2, nothing half-written, no input overwritten, Ctrl-C exits 130 with the best
weights kept."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from noisyseg.data.outdir import TEMP_MARKER, atomic_dir, check_out_dir, remove_stale_temps
from noisyseg.errors import ConfigError, WriteError

from .conftest import run_cli

ECHO = "synthetic-echo:n=8,size=24"
TINY_TRAIN = ["--epochs", "2", "--width", "4", "--model-option", "depth=2", "--no-progress"]


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err
    return err


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _dataset(tmp_path):
    src = tmp_path / "data"
    assert run_cli(["corrupt", "--data", ECHO, "--out", str(src), "--no-progress"]) in (0, None)
    return src


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("where", ["same", "inside", "contains"])
def test_corrupt_never_replaces_its_source(tmp_path, capsys, where):
    src = _dataset(tmp_path)
    before = _snapshot(src)
    out = {"same": src, "inside": src / "noisy", "contains": tmp_path}[where]
    capsys.readouterr()
    code = run_cli(["corrupt", "--data", str(src), "--out", str(out), "--overwrite",
                    "--no-progress"])
    assert code == 2
    _one_line_error(capsys, "--out", "the input", "inputs are never replaced")
    assert _snapshot(src) == before
    assert not (src / "noisy").exists()


def test_train_and_rank_refuse_an_out_inside_their_inputs(tmp_path, capsys):
    src = _dataset(tmp_path)
    before = _snapshot(src)
    capsys.readouterr()
    assert run_cli(["train", "--data", str(src), "--out", str(src / "run"), *TINY_TRAIN]) == 2
    _one_line_error(capsys, "lies inside the input")
    probs = tmp_path / "probs"
    probs.mkdir()
    assert run_cli(["rank", "--data", str(src), "--probs", str(probs), "--out", str(probs),
                    "--overwrite", "--no-progress"]) == 2
    _one_line_error(capsys, "is the input")
    assert _snapshot(src) == before


def test_check_out_dir_by_hand(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    check_out_dir(tmp_path / "d2", inputs=[data])  # a sibling sharing a name prefix is fine
    check_out_dir(tmp_path / "x", inputs=[None, data])
    for out, how in [(data, "is"), (data / "a" / "b", "lies inside"), (tmp_path, "contains")]:
        with pytest.raises(ConfigError, match=f"{how} the input"):
            check_out_dir(out, overwrite=True, inputs=[data])
    # the same folder named another way (relative, through a link) is still the input
    link = tmp_path / "link"
    link.symlink_to(data)
    with pytest.raises(ConfigError, match="is the input"):
        check_out_dir(link, overwrite=True, inputs=[data])


def test_out_whose_parent_is_a_file(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert run_cli(["corrupt", "--data", ECHO, "--out", str(f / "out"), "--no-progress"]) == 2
    _one_line_error(capsys, "--out", "is a file, not a folder")
    assert f.read_text() == "x"
    assert run_cli(["corrupt", "--data", ECHO, "--out", str(f), "--overwrite",
                    "--no-progress"]) == 2
    _one_line_error(capsys, "is a file, not a folder")
    assert f.read_text() == "x"


def test_read_only_file_system(tmp_path, capsys, monkeypatch):
    import tempfile

    def refuse(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path))

    monkeypatch.setattr(tempfile, "mkdtemp", refuse)
    out = tmp_path / "out"
    assert run_cli(["corrupt", "--data", ECHO, "--out", str(out), "--no-progress"]) == 2
    _one_line_error(capsys, "--out", "cannot write", "Read-only file system")
    assert not out.exists()


@pytest.mark.parametrize("data", [ECHO, "synthetic-ct:n=3,size=16,slices=4"])
def test_disk_full_while_writing(tmp_path, capsys, monkeypatch, data):
    from noisyseg.data import io

    calls = {"n": 0}
    real = io.write_image

    def fill_up(path, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(io, "write_image", fill_up)
    for mod in ("noisyseg.data.folder", "noisyseg.data.layouts"):
        if hasattr(sys.modules[mod], "write_image"):
            monkeypatch.setattr(sys.modules[mod], "write_image", fill_up)
        if hasattr(sys.modules[mod], "write_array"):
            monkeypatch.setattr(sys.modules[mod], "write_array", fill_up)
    out = tmp_path / "out"
    assert run_cli(["corrupt", "--data", data, "--model", "dilate", "--strength", "1",
                    "--out", str(out), "--no-progress"]) == 2
    err = _one_line_error(capsys, "--out", "No space left on device",
                          "the temporary folder was removed")
    assert calls["n"] >= 3, err
    assert not out.exists() and _leftovers(tmp_path) == []


def test_write_error_keeps_an_existing_out(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(WriteError, match="No space left"), atomic_dir(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert (out / "old.txt").read_text() == "old" and not (out / "new.txt").exists()
    assert _leftovers(tmp_path) == []


def _dead_pid():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_stale_temp_folders_of_dead_writers_are_removed(tmp_path):
    import socket

    out = tmp_path / "out"
    dead = tmp_path / ".out.tmp-1-abc"
    dead.mkdir()
    (dead / "junk.nii.gz").write_bytes(b"x" * 100)
    (dead / TEMP_MARKER).write_text(json.dumps({"host": socket.gethostname(),
                                                "pid": _dead_pid(), "started": None}))
    alive = tmp_path / ".out.tmp-2-def"  # this process: still writing
    alive.mkdir()
    (alive / TEMP_MARKER).write_text(json.dumps({"host": socket.gethostname(),
                                                 "pid": os.getpid(), "started": None}))
    other_host = tmp_path / ".out.tmp-3-ghi"
    other_host.mkdir()
    (other_host / TEMP_MARKER).write_text(json.dumps({"host": "elsewhere", "pid": 1}))
    unmarked = tmp_path / ".out.tmp-4-jkl"  # not ours to judge
    unmarked.mkdir()
    other_out = tmp_path / ".outer.tmp-5-mno"  # another output's
    other_out.mkdir()
    (other_out / TEMP_MARKER).write_text(json.dumps({"host": socket.gethostname(),
                                                     "pid": _dead_pid()}))
    assert remove_stale_temps(out) == [dead]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".out.tmp-2-def", ".out.tmp-3-ghi", ".out.tmp-4-jkl", ".outer.tmp-5-mno"]


def test_a_writer_killed_by_sigkill_leaves_nothing_the_next_run_keeps(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "noisyseg.cli", "corrupt", "--data",
                             "synthetic-echo:n=400,size=96", "--out", str(out), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            temps = [p for p in tmp_path.glob(".out.tmp-*") if (p / "images").is_dir()]
            if temps and any(temps[0].joinpath("images").iterdir()):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the writer finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not out.exists() and len(list(tmp_path.glob(".out.tmp-*"))) == 1
    assert run_cli(["corrupt", "--data", ECHO, "--out", str(out), "--no-progress"]) in (0, None)
    assert (out / "dataset.json").is_file() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("args,match", [
    (["corrupt", "--data", ECHO, "--seed", "-1"], "--seed: expected an integer from 0 to"),
    (["corrupt", "--data", ECHO, "--seed", str(2**40)], "--seed: expected an integer from 0 to"),
    (["train", "--data", ECHO, "--seed", "-1", *TINY_TRAIN], "--seed: expected an integer"),
    (["train", "--data", ECHO, "--threads", "-3", *TINY_TRAIN], "--threads: expected a positive"),
    (["train", "--data", ECHO, "--threads", "0", *TINY_TRAIN], "leave it out for all cores"),
    (["audit", "--data", ECHO, "--seed", "-5", *TINY_TRAIN], "--seed: expected an integer"),
])
def test_bad_seed_and_threads(tmp_path, capsys, args, match):
    out = tmp_path / "out"
    assert run_cli([*args, "--out", str(out)]) == 2
    _one_line_error(capsys, match)
    assert not out.exists() and _leftovers(tmp_path) == []


def test_library_refuses_bad_seeds_and_threads():
    from noisyseg.corrupt.apply import choose_samples
    from noisyseg.train import TrainConfig

    with pytest.raises(ConfigError, match="seed"):
        TrainConfig(seed=-1)
    with pytest.raises(ConfigError, match="seed"):
        TrainConfig(seed=True)
    with pytest.raises(ConfigError, match="threads"):
        TrainConfig(threads=0)
    assert TrainConfig(threads=2).threads == 2 and TrainConfig().threads is None
    import numpy as np

    with pytest.raises(ConfigError, match="seed"):
        choose_samples(np.arange(4), 4, 0.5, -2)


@pytest.mark.parametrize("command", ["train", "audit"])
def test_ctrl_c_exits_130_with_the_best_weights_written(tmp_path, capsys, monkeypatch, command):
    from noisyseg.train.trainer import Trainer

    real = Trainer.validate
    calls = {"n": 0}

    def validate_then_interrupt(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(Trainer, "validate", validate_then_interrupt)
    out = tmp_path / "run"
    code = run_cli([command, "--data", "synthetic-echo:n=12,size=32", "--epochs", "5",
                    "--width", "4", "--model-option", "depth=2", "--no-progress",
                    "--out", str(out)])
    assert code == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "best weights so far (epoch 1)" in err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["best_epoch"] == 1
    import pandas as pd

    assert list(pd.read_csv(out / "history.csv")["epoch"]) == [1]  # stopped in epoch 2 of 5
    if command == "train":
        assert (out / "model.pt").is_file()
    else:
        assert (out / "scores.csv").is_file()
