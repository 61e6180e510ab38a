"""The run folder: run.json, one writer and one reader per file, typed results read back."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest

import noisyseg
from noisyseg.api import read_run, run_train
from noisyseg.errors import DataError
from noisyseg.run import (
    FORMAT_VERSION,
    TABLES,
    encode_table,
    read_run_json,
    write_record,
    write_run_json,
)
from noisyseg.train import TrainConfig


def test_run_json_lists_what_was_written_and_reads_back(tmp_path):
    write_record(tmp_path, "rank.json", {"data": "synthetic-echo", "n_cases": 3})
    (tmp_path / "scores.csv").write_text("x\n")
    write_run_json(tmp_path, "rank", data="synthetic-echo")
    info = read_run_json(tmp_path)
    assert (info.kind, info.record, info.data) == ("rank", "rank.json", "synthetic-echo")
    assert info.format_version == FORMAT_VERSION and info.files == ("rank.json", "scores.csv")
    with pytest.raises(ValueError, match="kind"):
        write_run_json(tmp_path, "nonsense", data="x")
    with pytest.raises(ValueError, match="metrics.json before run.json"):
        write_run_json(tmp_path, "audit", data="x")  # an audit's record is missing


def test_tables_are_written_with_their_columns_only():
    with pytest.raises(ValueError, match="missing columns"):
        encode_table("scores.csv", pd.DataFrame({"sample_id": ["a"]}))
    with pytest.raises(ValueError, match="not a run-folder table"):
        encode_table("other.csv", pd.DataFrame())
    empty = encode_table("refurbish_events.csv", pd.DataFrame())  # header only
    assert empty.decode().strip() == ",".join(TABLES["refurbish_events.csv"])


def test_a_train_run_returns_what_its_folder_says(tmp_path):
    out = tmp_path / "t"
    res = run_train(data="synthetic-echo:n=12,size=32", out=out, progress=False,
                    config=TrainConfig(epochs=1, batch_size=4, threads=1,
                                       model_options={"width": 4}))
    back = read_run(out)
    assert (res.kind, back.kind) == ("train", "train")
    assert json.dumps(back.test) == json.dumps(res.test)  # NaN (an undefined HD95) included
    assert res.test["mean"]["dice"] == json.loads((out / "metrics.json").read_text())[
        "test"]["mean"]["dice"]
    info = json.loads((out / "run.json").read_text())
    assert info["files"] == sorted(p.name for p in out.iterdir() if p.name != "run.json")
    assert info["noisyseg"] == noisyseg.__version__ and "metrics.json" in info["files"]
    with pytest.raises(DataError, match="no run.json"):
        read_run(tmp_path)


def test_api_writes_no_file_itself():
    """Every file of a run folder or dataset is written below the API, by its one writer."""
    src = (Path(noisyseg.__file__).parent / "api.py").read_text()
    code = re.sub(r'"""(?:.|\n)*?"""', "", src)  # docstrings name files; code must not write
    for call in ("write_text(", "write_bytes(", "to_csv(", "open(", "save_figure(", "savez",
                 "mkdir(", "atomic_dir(", ".save("):
        assert call not in code, call
