"""`noisyseg nnunet train`: nnU-Net's own training with the per-case training loss recorded
(:mod:`noisyseg.run.nnunet`), and `noisyseg rank` adding it to the out-of-fold ranking.

Every training runs in this process on the CPU with nnU-Net's folders under pytest's
temporary folder, ``nnUNet_n_proc_DA=0`` (no augmentation workers, so a seeded run repeats)
and a schedule of a few iterations.
"""

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_cli, save_nifti
from tests.nnunet.conftest import BAD, CONFIG, TRAINER, nnunet_env, plan_and_preprocess, write_raw

if os.environ.get("NOISYSEG_REQUIRE_NNUNET"):  # CI: the extra must be there, never skipped
    import nnunetv2  # noqa: F401
else:
    pytest.importorskip("nnunetv2")

import torch  # noqa: E402

from noisyseg.errors import ConfigError, DataError  # noqa: E402
from noisyseg.run.folder import read_run_json  # noqa: E402
from noisyseg.run.nnunet import (  # noqa: E402
    NNUNET_LOSS,
    CaseLosses,
    make_trainer,
    patch_losses,
    read_fold_scores,
    write_fold_scores,
)

SHORT = dict(epochs=2, iterations=4, val_iterations=1)


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """Dataset902_Broken, preprocessed: :func:`write_raw`'s cases, one of fold 0's training
    cases with its whole label shifted by 10 voxels in-plane (as a label registered to the
    wrong image), and a ``noisyseg/manifest.csv`` saying so (as ``noisyseg corrupt`` writes).
    Yields (root, the broken case, fold 0's training cases) with nnU-Net's folders set."""
    from nnunetv2.utilities.crossval_split import generate_crossval_split

    root = tmp_path_factory.mktemp("nnunet_train")
    env = nnunet_env(root)
    raw = root / "nnUNet_raw" / "Dataset902_Broken"
    truth = write_raw(raw, seed=1)
    train0 = sorted(generate_crossval_split(sorted(truth), seed=12345, n_splits=5)[0]["train"])
    case = train0[1]
    shifted = np.roll(truth[case], (10, 10), axis=(1, 2))
    save_nifti(shifted.T, raw / "labelsTr" / f"{case}.nii.gz", dtype=np.int16)
    (raw / "noisyseg").mkdir()
    pd.DataFrame({"sample_id": sorted(truth), "corrupted": [c == case for c in sorted(truth)]}
                 ).to_csv(raw / "noisyseg" / "manifest.csv", index=False)
    plan_and_preprocess(raw, root, 902)
    with pytest.MonkeyPatch.context() as mp:
        for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
            mp.setenv(var, env[var])
        yield root, case, train0


@pytest.fixture
def one_process(monkeypatch):
    """No augmentation workers during a training (set for the test only: nnU-Net's
    preprocessing started by another fixture refuses 0)."""
    monkeypatch.setenv("nnUNet_n_proc_DA", "0")


def _losses_of(trainer):
    """Run ``trainer`` (no final validation); return nnU-Net's loss of every iteration."""
    losses = []
    step = trainer.train_step

    def recorded(batch):
        out = step(batch)
        losses.append(float(out["loss"]))
        return out

    trainer.train_step = recorded
    trainer.run_training()
    return losses


def test_training_is_nnunets_own_with_and_without_the_detector(broken, one_process,
                                                                   monkeypatch):
    import random

    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

    root, _, train0 = broken
    pre = root / "nnUNet_preprocessed" / "Dataset902_Broken"
    monkeypatch.setenv("nnUNet_results", str(root / "results_plain"))
    plans = json.loads((pre / "nnUNetPlans.json").read_text()) | {"continue_training": False}
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    plain = nnUNetTrainer(plans, CONFIG, 0, json.loads((pre / "dataset.json").read_text()),
                          torch.device("cpu"))
    plain.num_epochs, plain.num_iterations_per_epoch, plain.num_val_iterations_per_epoch = 2, 4, 1
    want = _losses_of(plain)

    monkeypatch.setenv("nnUNet_results", str(root / "results_ours"))
    ours = make_trainer(902, CONFIG, 0, device="cpu", seed=0, **SHORT)
    assert type(ours).__name__ == "nnUNetTrainer" and isinstance(ours, nnUNetTrainer)
    got = _losses_of(ours)
    assert len(got) == 8 and got == want  # the same losses, bit for bit
    for (name, a), (_, b) in zip(plain.network.state_dict().items(),
                                 ours.network.state_dict().items(), strict=True):
        assert torch.equal(a, b), name  # and the same weights after training
    # and the detector saw every patch of every iteration
    cl = ours.case_losses
    assert cl.case_ids == tuple(train0) and cl.epochs == 2
    assert int(cl.window_patches().sum()) == 2 * 4 * ours.batch_size
    # nnU-Net's folder under nnU-Net's default trainer's name, with our run folder inside
    fold = root / "results_ours" / "Dataset902_Broken" / TRAINER / "fold_0"
    assert (fold / "checkpoint_final.pth").is_file()
    assert read_run_json(fold / "noisyseg").kind == "nnunet"
    ckpt = torch.load(fold / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    assert ckpt["trainer_name"] == "nnUNetTrainer"  # nnUNetv2_predict finds nnU-Net's class


def test_the_cli_trains_and_ranks_the_broken_label_worst(broken, one_process, capsys):
    root, case, train0 = broken
    assert run_cli(["nnunet", "train", "902", CONFIG, "0", "--device", "cpu", "--epochs", "3",
                    "--iterations", "5", "--val-iterations", "1", "--window", "3", "--seed", "0",
                    "--no-validation"]) == 0
    assert "nnunet-loss of 4 training cases (last 3 of 3 epochs)" in " ".join(
        capsys.readouterr().err.split())
    folder = root / "nnUNet_results" / "Dataset902_Broken" / TRAINER / "fold_0" / "noisyseg"
    assert read_run_json(folder).kind == "nnunet"
    scores = pd.read_csv(folder / "scores.csv")
    assert sorted(scores["sample_id"]) == train0  # one row per training case of the fold
    assert set(scores["detector"]) == {NNUNET_LOSS}
    worst = scores.sort_values("rank").iloc[0]
    assert worst["sample_id"] == case and worst["rank"] == 1, scores
    assert scores.set_index("sample_id")["corrupted"].to_dict() == {c: c == case for c in train0}
    rec = json.loads((folder / "metrics.json").read_text())
    assert rec["window"] == 3 and rec["epochs"] == 3 and rec["fold"] == 0
    assert rec["patches_in_window"] == 3 * 5 * rec["batch_size"]
    assert rec["data"] == f"nnunet:{root / 'nnUNet_raw' / 'Dataset902_Broken'}"
    det = json.loads((folder / "detection.json").read_text())["detectors"][NNUNET_LOSS]
    assert det["average_precision"] == 1.0
    assert read_fold_scores(folder.parent) == dict(zip(scores["sample_id"], scores["score"],
                                                       strict=True))


@pytest.mark.parametrize(("args", "message"), [
    (["999", CONFIG, "0"], "error: DATASET: no nnU-Net dataset with id 999"),
    (["902", CONFIG, "x"], "error: FOLD: expected a whole number >= 0 or 'all', got 'x'"),
    (["902", CONFIG, "1.5"], "error: FOLD: expected a whole number >= 0 or 'all', got '1.5'"),
    (["902", "3d_lowres", "0"], "error: CONFIGURATION: nnUNetPlans.json has no configuration"),
    (["902", CONFIG, "0", "-p", "NoPlans"], "error: -p/--plans:"),
    (["902", CONFIG, "0", "--window", "0"], "error: --window: expected a whole number >= 1"),
    (["902", CONFIG, "0", "--epochs", "0"], "error: --epochs: expected a whole number >= 1"),
    (["902", CONFIG, "0", "--device", "tpu"], "error: --device: expected one of auto, cuda"),
    (["902", CONFIG, "0", "--pretrained-weights", "nope.pth"],
     "error: --pretrained-weights: nope.pth is not a file"),
])
def test_bad_input_is_one_line_and_exit_status_2(broken, capsys, args, message):
    device = [] if "--device" in args else ["--device", "cpu"]
    assert run_cli(["nnunet", "train", *args, *device]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and len(err.splitlines()) == 1, err


def test_unset_nnunet_folders_are_named(monkeypatch):
    monkeypatch.delenv("nnUNet_results", raising=False)
    monkeypatch.setenv("nnUNet_preprocessed", "/nowhere")
    with pytest.raises(ConfigError, match="nnUNet_results: not set"):
        make_trainer(1, CONFIG, 0, device="cpu")


def test_patch_losses_are_nnunets_loss_of_each_patch():
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    g = torch.Generator().manual_seed(0)
    inner = DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False},
                           {}, weight_ce=1, weight_dice=1, dice_class=MemoryEfficientSoftDiceLoss)
    loss = DeepSupervisionWrapper(inner, [2 / 3, 1 / 3, 0])
    out = [torch.randn(3, 3, 16, 16, generator=g, requires_grad=True),
           torch.randn(3, 3, 8, 8, generator=g), torch.randn(3, 3, 4, 4, generator=g)]
    tgt = [torch.randint(0, 3, (3, 1, s, s), generator=g) for s in (16, 8, 4)]
    got = patch_losses(loss, out, tgt)
    assert got.shape == (3,) and not got.requires_grad
    want = torch.stack([inner(out[0][i:i + 1], tgt[0][i:i + 1]) for i in range(3)])
    torch.testing.assert_close(got, want.detach())
    # a patch whose labels are wrong costs more
    perfect = torch.nn.functional.one_hot(tgt[0][:, 0], 3).permute(0, 3, 1, 2).float() * 20
    wrong = perfect.clone()
    wrong[1] = perfect[1].roll(1, dims=0)
    losses = patch_losses(inner, wrong, tgt[0])
    assert int(losses.argmax()) == 1 and losses[0] < -0.9 and losses[2] < -0.9


def test_case_losses_are_the_loss_detectors_window_mean():
    cl = CaseLosses(["a", "b", "c"], window=2)
    for epoch, batches in enumerate([[(["a", "a", "b"], [1.0, 3.0, 5.0])],
                                     [(["a", "c"], [4.0, 1.0])],
                                     [(["b", "b"], [2.0, 4.0]), (["a"], [6.0])]]):
        cl.epoch_start(epoch)
        for keys, values in batches:
            cl.add(keys, np.array(values))
        cl.epoch_end(epoch)
    # per epoch means a: 2, 4, 6; b: 5, -, 3; c: -, 1, -; the last 2 epochs
    np.testing.assert_allclose(cl.scores(), [5.0, 3.0, 1.0])
    assert cl.window_patches().tolist() == [2, 2, 1]
    again = CaseLosses(["a", "b", "c"], window=2)
    again.load_state_dict(json.loads(json.dumps(cl.state_dict())))
    again.epoch_start(3)
    again.add(["c"], np.array([3.0]))
    again.epoch_end(3)
    np.testing.assert_allclose(again.scores(), [6.0, 3.0, 3.0])
    with pytest.raises(DataError, match="case 'z', which is not a training case"):
        cl.add(["z"], np.array([1.0]))
    with pytest.raises(ConfigError, match="window: expected a whole number of epochs >= 1"):
        CaseLosses(["a"], window=0)


def _with_training_scores(crossval, tmp_path, skip=()):
    """A copy of the crossval results folder whose folds hold training scores: each case's
    loss is 1 + its index (:data:`BAD`: 10), plus 0.1 x the fold."""
    res = tmp_path / "results" / TRAINER
    shutil.copytree(crossval.results, res)
    ids = sorted(crossval.truth)
    for fold in sorted(set(crossval.fold_of.values())):
        if fold in skip:
            continue
        train = [c for c in ids if crossval.fold_of[c] != fold]
        scores = np.array([10.0 if c == BAD else 1.0 + ids.index(c) for c in train]) + 0.1 * fold
        write_fold_scores(res / f"fold_{fold}", train, scores, flag_rule="top", flag_value=0.2,
                          record={"data": f"nnunet:{crossval.raw}", "fold": fold})
    return res, ids


def test_rank_adds_the_training_loss_of_the_folds(crossval, tmp_path):
    res, ids = _with_training_scores(crossval, tmp_path)
    out = tmp_path / "aud"
    assert run_cli(["rank", "--data", f"nnunet:{crossval.raw}", "--probs", str(res),
                    "--no-progress", "--out", str(out)]) == 0
    scores = pd.read_csv(out / "scores.csv")
    assert set(scores["detector"]) == {"label-quality", "dice", "expected-dice", NNUNET_LOSS}
    loss = scores[scores["detector"] == NNUNET_LOSS].set_index("sample_id")
    assert sorted(loss.index) == ids and loss.loc[BAD, "rank"] == 1
    for c in ids:  # the mean over the folds that trained on the case
        folds = [f for f in sorted(set(crossval.fold_of.values())) if f != crossval.fold_of[c]]
        base = 10.0 if c == BAD else 1.0 + ids.index(c)
        assert loss.loc[c, "score"] == pytest.approx(base + 0.1 * np.mean(folds))
    rank = json.loads((out / "rank.json").read_text())
    assert rank["training_loss_folds"] == [f"fold_{f}" for f in range(5)]
    assert rank["detector"] == "expected-dice"  # the primary detector is unchanged


def test_rank_leaves_the_loss_out_when_a_fold_lacks_it(crossval, tmp_path, caplog):
    res, _ = _with_training_scores(crossval, tmp_path, skip=(0, 1, 2, 3))
    out = tmp_path / "aud"
    assert run_cli(["rank", "--data", f"nnunet:{crossval.raw}", "--probs", str(res),
                    "--no-progress", "--out", str(out)]) == 0
    assert set(pd.read_csv(out / "scores.csv")["detector"]) == {"label-quality", "dice",
                                                                 "expected-dice"}
    assert "nnunet-loss left out" in caplog.text and "only fold_4 hold" in caplog.text


def test_rank_refuses_training_scores_of_a_validated_case(crossval, tmp_path, capsys):
    res, ids = _with_training_scores(crossval, tmp_path)
    fold = crossval.fold_of[ids[0]]
    write_fold_scores(res / f"fold_{fold}", ids, np.arange(len(ids), dtype=float),
                      record={"data": ""})
    assert run_cli(["rank", "--data", f"nnunet:{crossval.raw}", "--probs", str(res),
                    "--no-progress", "--out", str(tmp_path / "aud")]) == 2
    err = capsys.readouterr().err
    assert "is a training case of this fold and also predicted out-of-fold" in err
    assert len(err.strip().splitlines()) == 1
