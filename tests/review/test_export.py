"""`noisyseg review export`: the corrected dataset in the source layout and geometry."""

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest

from noisyseg.data import load_dataset
from noisyseg.errors import ConfigError, DataError
from noisyseg.review import DecisionStore, export_review, open_audit

from ..conftest import BAD, run_cli


def _decide(aud, decisions):
    s = DecisionStore(aud / "review.sqlite")
    for sid, d in decisions:
        s.add(sid, d, reviewer="ann", note=f"{d} {sid}")
    return s


def test_2d_folder_export_swaps_in_accepted_pseudo_labels(audit_2d, tmp_path):
    aud, src, clean, noisy = audit_2d
    view = open_audit(aud)
    top = view.cases["sample_id"].tolist()
    assert all(noisy[s] for s in top[:3])
    _decide(aud, [(top[0], "accept"), (top[1], "reannotate"), (top[2], "keep"),
                  (top[3], "accept"), (top[3], "undecided")])
    out = tmp_path / "fixed"
    assert run_cli(["review", "export", str(aud), "--out", str(out)]) == 0
    fixed = load_dataset(str(out))  # a folder `noisyseg train --data` reads
    given = load_dataset(str(src))
    changed = []
    for i, sid in enumerate(fixed.sample_ids):
        if not np.array_equal(fixed.masks[i], given.masks[i]):
            changed.append(sid)
    assert changed == [top[0]]
    assert np.array_equal(fixed.masks[fixed.sample_ids.index(top[0])], clean[top[0]])
    # the clean masks of a simulated dataset travel along; the split too
    assert fixed.clean_masks is not None and list(fixed.split) == list(given.split)
    # untouched files are copied byte for byte
    for name in ("images", "masks"):
        f = sorted((src / name).iterdir())[5]
        assert (out / name / f.name).read_bytes() == f.read_bytes() or f.stem in changed
    dec = pd.read_csv(out / "decisions.csv")
    assert dec["sample_id"].tolist() == top[:3]  # withdrawn: not a decision
    assert dec["decision"].tolist() == ["accept", "reannotate", "keep"]
    assert dec["label_written"].tolist() == ["pseudo-label", "given", "given"]
    assert dec["corrupted"].tolist() == [True, True, True]
    re = pd.read_csv(out / "reannotate.csv")
    assert re["sample_id"].tolist() == [top[1]] and re["note"][0] == f"reannotate {top[1]}"
    rec = json.loads((out / "review.json").read_text())
    assert (rec["n_accepted"], rec["n_kept"], rec["n_reannotate"], rec["n_reviewed"]) == (1, 1, 1, 3)


def test_nnunet_export_stays_an_nnunet_dataset_with_its_headers(audit_nnunet, tmp_path):
    aud, raw, truth = audit_nnunet
    _decide(aud, [(BAD, "accept"), ("case_001", "reannotate")])
    out = tmp_path / "fixed" / "Dataset009_Toy"
    rec = export_review(aud, out)
    assert rec["layout"] == "nnunet" and rec["n_accepted"] == 1
    # nnU-Net's own files, as nnU-Net reads them; noisyseg's records in noisyseg/
    assert (out / "dataset.json").read_text() == (raw / "dataset.json").read_text()
    assert sorted(p.name for p in (out / "imagesTr").iterdir()) == sorted(
        p.name for p in (raw / "imagesTr").iterdir())
    assert not (out / "noisyseg" / "labelsTr_clean").exists()  # a real dataset has no clean labels
    for f in ("decisions.csv", "reannotate.csv", "review.json", "split.csv"):
        assert (out / "noisyseg" / f).is_file()
    for f in sorted((raw / "labelsTr").iterdir()):
        new = out / "labelsTr" / f.name
        if f.name != f"{BAD}.nii.gz":
            assert new.read_bytes() == f.read_bytes()  # kept: byte for byte
            continue
        a, b = nib.load(str(f)), nib.load(str(new))
        assert np.allclose(a.affine, b.affine) and a.shape == b.shape
        assert int(b.header["sform_code"]) == 2 and b.get_data_dtype() == np.int16
        assert np.array_equal(np.asarray(b.dataobj).T, truth[BAD])  # the model's label
    ds = load_dataset(f"nnunet:{out}")
    assert len(ds) == len(load_dataset(f"nnunet:{raw}"))
    assert pd.read_csv(out / "noisyseg" / "reannotate.csv")["sample_id"].tolist() == ["case_001"]


def test_review_of_a_training_audit_on_a_resized_folder(tmp_path):
    """`noisyseg audit` trains at 32 x 32 on 30 x 26 images; its pseudo_labels/ are on the
    source grid, the review reads them there, the export keeps the header."""
    from noisyseg.api import run_audit
    from noisyseg.train import TrainConfig

    from ..data.test_volumes import flat_folder

    root = flat_folder(tmp_path / "flat")
    cfg = TrainConfig(epochs=2, steps_per_epoch=2, batch_size=4, model_options={"width": 4},
                      threads=1)
    aud = tmp_path / "aud"
    run_audit(data=f"{root},size=32", out=aud, config=cfg, detectors=("loss",), progress=False)
    view = open_audit(aud)
    assert view.kind == "audit" and view.detectors == ["loss"]
    sid = view.cases["sample_id"][0]
    c = view.case(int(view.cases["index"][0]))
    assert c.given.shape == c.pseudo.shape == (26, 30)  # the file's own grid (x, y stored)
    _decide(aud, [(sid, "accept")])
    out = tmp_path / "fixed"
    export_review(aud, out)
    a, b = nib.load(str(root / "masks" / f"{sid}.nii.gz")), nib.load(str(out / "masks" / f"{sid}.nii.gz"))
    assert np.allclose(a.affine, b.affine) and a.shape == b.shape and b.get_data_dtype() == np.int16
    assert np.array_equal(np.asarray(b.dataobj)[..., 0].T, c.pseudo)


def test_export_without_decisions_writes_the_given_masks(audit_2d, tmp_path, caplog):
    aud, src, _, _ = audit_2d
    rec = export_review(aud, tmp_path / "fixed")
    assert rec["n_reviewed"] == 0 and "has no decisions yet" in caplog.text
    for f in (src / "masks").iterdir():
        assert (tmp_path / "fixed" / "masks" / f.name).read_bytes() == f.read_bytes()


def test_export_errors_leave_nothing_behind(audit_2d, tmp_path):
    aud, src, _, _ = audit_2d
    out = tmp_path / "fixed"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="exists and is not empty"):
        export_review(aud, out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    with pytest.raises(DataError, match="not a run folder"):
        export_review(src, tmp_path / "f2")
    assert not (tmp_path / "f2").exists()
    src.rename(tmp_path / "moved")
    with pytest.raises(DataError, match="the audit's dataset moved"):
        export_review(aud, tmp_path / "f3")
    assert not (tmp_path / "f3").exists()
    assert export_review(aud, tmp_path / "f4", data=str(tmp_path / "moved"))["n_cases"] == 20


@pytest.mark.parametrize(("args", "match"), [
    (["review", "export", "nowhere", "--out", "x"], "audit: nowhere is not a folder"),
    (["review", "nowhere"], "audit: nowhere is not a folder"),
    (["review", "--port", "70000", "AUD"], "--port: expected 0..65535, got 70000"),
])
def test_cli_errors_are_one_line(audit_2d, tmp_path, capsys, monkeypatch, args, match):
    monkeypatch.chdir(tmp_path)
    args = [str(audit_2d[0]) if a == "AUD" else a for a in args]
    assert run_cli(args) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2
