import json

import numpy as np
import pandas as pd
import pytest
import torch

from noisyseg.api import run_train
from noisyseg.data import synthetic_echo
from noisyseg.errors import ConfigError
from noisyseg.train import Callback, TrainConfig, Trainer, load_checkpoint


@pytest.fixture(scope="module")
def tiny():
    return synthetic_echo(n=24, size=32, seed=0)


def _cfg(**kw):
    base = dict(model="unet", model_options={"width": 4, "depth": 2}, epochs=2,
                steps_per_epoch=4, batch_size=4, threads=1)
    base.update(kw)
    return TrainConfig(**base)


class Recorder(Callback):
    def __init__(self):
        self.events, self.ids, self.losses = [], [], []

    def on_train_start(self, trainer):
        self.events.append("start")

    def on_epoch_start(self, trainer, epoch):
        self.events.append(f"epoch{epoch}")

    def on_batch_end(self, trainer, batch):
        self.ids.append(batch.indices.tolist())
        self.losses.append(batch.losses)

    def on_checkpoint(self, trainer, epoch, score):
        self.events.append("ckpt")

    def on_train_end(self, trainer):
        self.events.append("end")


def test_loss_decreases(tiny):
    tr = Trainer(_cfg(epochs=8, steps_per_epoch=6, augment=False), tiny).fit()
    losses = [h["train_loss"] for h in tr.history]
    assert losses[-1] < 0.8 * losses[0]


def test_callbacks_see_training_samples_only_with_per_sample_losses(tiny):
    rec = Recorder()
    Trainer(_cfg(), tiny, [rec]).fit()
    assert rec.events[0] == "start" and rec.events[-1] == "end" and "ckpt" in rec.events
    train = set(tiny.indices("train").tolist())
    assert all(set(b) <= train for b in rec.ids)
    assert all(loss.shape == (4,) and torch.isfinite(loss).all() for loss in rec.losses)


def test_same_seed_same_numbers(tiny):
    a = Trainer(_cfg(seed=3), tiny).fit()
    b = Trainer(_cfg(seed=3), tiny).fit()
    c = Trainer(_cfg(seed=4), tiny).fit()
    assert a.history[-1]["train_loss"] == b.history[-1]["train_loss"]
    assert a.best_score == b.best_score
    assert a.history[-1]["train_loss"] != c.history[-1]["train_loss"]


def test_replace_masks_changes_the_training_target(tiny):
    tr = Trainer(_cfg(), tiny)
    i = int(tiny.indices("train")[0])
    tr.replace_masks([i], np.zeros((1, 32, 32), np.uint8))
    assert int(tr.train_targets[i].sum()) == 0


def test_balanced_sampling_prefers_samples_with_rare_classes():
    ds = synthetic_echo(n=30, size=32, seed=1)
    masks = ds.masks.copy()
    train = ds.indices("train")
    for i in train[1:]:
        masks[i][masks[i] == 3] = 0  # only the first training sample shows the atrium
    tr = Trainer(_cfg(balanced=True), ds.with_masks(masks))
    w = tr._sampling_weights()
    assert w[0] > w[1:].max()


def test_checkpoint_round_trip_and_run_folder(tmp_path):
    res = run_train(data="synthetic-echo:n=24,size=32", out=tmp_path / "run", config=_cfg(),
                    progress=False)
    run = tmp_path / "run"
    for f in ("metrics.json", "history.csv", "model.pt", "predictions.png", "config.json"):
        assert (run / f).exists()
    m = json.loads((run / "metrics.json").read_text())
    assert set(m["test"]["per_class"]) >= {"lv_cavity", "lv_myocardium", "left_atrium",
                                           "lv_epicardium"}
    assert m["config"]["seed"] == 0 and res.test["mean"]["dice"] == m["test"]["mean"]["dice"]
    assert m["precision"] == "fp32" and m["memory_format"] in ("channels_last", "contiguous")
    hist = pd.read_csv(run / "history.csv")
    assert list(hist.columns[:4]) == ["epoch", "train_loss", "val_dice", "images_per_s"]
    model, ckpt = load_checkpoint(run / "model.pt")
    ds = synthetic_echo(n=24, size=32)
    tr = Trainer(_cfg(), ds)
    tr.model.load_state_dict(ckpt["state_dict"])
    x = torch.randn(2, 1, 32, 32)
    tr.model.eval()
    torch.testing.assert_close(model(x), tr.model(x))


def test_bad_config_and_size(tiny):
    with pytest.raises(ConfigError, match="epochs"):
        TrainConfig(epochs=0)
    # 40 is no multiple of FCN32's 32: padded to 64 and cropped back, no longer an error
    tr = Trainer(_cfg(model="fcn32", model_options={"width": 4}), synthetic_echo(n=6, size=40))
    assert tr.model.multiple == 32 and tr.predict([0]).shape == (1, 40, 40)


class _Scaled(torch.nn.Module):
    """A model whose first convolution does not see the input itself (forces the fallback)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(2 * x)


class _Skip(torch.nn.Module):
    """The first convolution sees the input, but the input also reaches the output directly."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)

    def forward(self, x):
        return self.conv(x) + x


@pytest.mark.parametrize("name", ["unet", "segnet", "fcn32", "scaled", "strided", "skip"])
def test_input_gradient_capture_equals_autograd(name):
    """The training step's input gradient, captured from the first convolution, is autograd's."""
    from noisyseg.models import build_model
    from noisyseg.train.trainer import _InputGradient

    torch.manual_seed(0)
    if name == "scaled":
        model = _Scaled()
    elif name == "skip":
        model = _Skip()
    elif name == "strided":  # first convolution's adjoint is not a convolution: fallback
        model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, stride=2, padding=1),
                                    torch.nn.Upsample(scale_factor=2))
    else:
        model = build_model(name, n_classes=4, width=4)
    grab = _InputGradient(model, (1, 32, 32), torch.device("cpu"))
    assert (grab.handle is not None) == (name in ("unet", "segnet", "fcn32"))
    x = torch.randn(3, 1, 32, 32)
    y = torch.randint(0, 4, (3, 32, 32))
    ref = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(model(ref), y).backward()
    grab.prepare(x)
    (torch.nn.functional.cross_entropy(model(x), y) * 8).backward()  # a loss scale of 8
    grab.finish(8.0)
    assert x.grad is not None and float(ref.grad.abs().max()) > 0
    torch.testing.assert_close(x.grad, ref.grad, rtol=1e-4, atol=1e-6 * float(ref.grad.abs().max()))
    grab.close()


def test_input_gradients_reach_callbacks_and_change_no_number(tiny):
    """Asking for input gradients gives every batch one and leaves training bit-identical."""

    class Grads(Callback):
        def __init__(self):
            self.grads = []

        def on_train_start(self, trainer):
            trainer.track_input_grad = True

        def on_batch_end(self, trainer, batch):
            self.grads.append(batch.inputs.grad)

    rec = Grads()
    with_grads = Trainer(_cfg(), tiny, [rec]).fit()
    plain = Trainer(_cfg(), tiny).fit()
    assert len(rec.grads) == 8 and all(g is not None and g.shape == (4, 1, 32, 32) for g in rec.grads)
    assert all(float(g.abs().max()) > 0 for g in rec.grads)
    assert [h["train_loss"] for h in with_grads.history] == [h["train_loss"] for h in plain.history]
    for a, b in zip(with_grads.model.state_dict().values(), plain.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)


def test_ignored_pixels_leave_the_loss(tiny):
    from noisyseg.train import IGNORE_INDEX

    g = torch.Generator().manual_seed(0)
    y = torch.as_tensor(tiny.masks[:3].astype(np.int64))
    for loss in ("dicece", "ce", "wce"):
        tr = Trainer(_cfg(loss=loss), tiny)
        logits = torch.randn(3, tiny.n_classes, 32, 32, generator=g, requires_grad=True)
        # the masked path with nothing masked is the plain loss
        torch.testing.assert_close(tr._masked_loss(logits, y, torch.ones_like(y, dtype=torch.bool)),
                                   tr.per_sample_loss(logits, y))
        # ignoring the right half is the loss of the left half alone (hand-derivable: the
        # zeroed pixels add nothing to the Dice overlaps or sums, and CE averages the rest)
        half = y.clone()
        half[..., 16:] = IGNORE_INDEX
        half[2] = IGNORE_INDEX  # sample 2: nothing left to learn from
        got = tr.per_sample_loss(logits, half)
        torch.testing.assert_close(got[:2], tr.per_sample_loss(logits[:2, ..., :16], y[:2, ..., :16]))
        assert float(got[2].detach()) == 0.0
        got.sum().backward()
        assert float(logits.grad[..., 16:].abs().max()) == 0.0 and logits.grad[:2, ..., :16].abs().sum() > 0


def test_wce_weights_the_background_by_the_foreground_frequency():
    from noisyseg.train import class_balance_weights

    # 12 background voxels, 3 of class 1, 1 of class 2, none of class 3, 4 ignored (255)
    m = np.zeros((2, 2, 5), np.uint8)
    m[0, 0, :3] = 1
    m[0, 0, 3] = 2
    m[1, 1, :4] = 255
    w = class_balance_weights(m, 4).numpy()
    # foreground share f = 4/16: weights (f, 1, 1, 1), scaled so 12 w0 + 4 w1 = 16
    scale = 16 / (12 * 0.25 + 4)
    np.testing.assert_allclose(w, [0.25 * scale, scale, scale, scale], rtol=1e-6)
    np.testing.assert_array_equal(class_balance_weights(np.zeros((1, 3), np.uint8), 2).numpy(),
                                  [1.0, 1.0])  # no foreground: plain cross-entropy


def test_wce_is_cross_entropy_weighted_by_class(tiny):
    import torch.nn.functional as F

    tr = Trainer(_cfg(loss="wce"), tiny)
    w = tr.class_weights
    assert w is not None and w[0] < w[1:].min()  # the background is the common class
    g = torch.Generator().manual_seed(1)
    y = torch.as_tensor(tiny.masks[:2].astype(np.int64))
    logits = torch.randn(2, tiny.n_classes, 32, 32, generator=g)
    per_pixel = F.cross_entropy(logits, y, reduction="none")
    expected = (w[y] * per_pixel).sum(dim=(1, 2)) / w[y].sum(dim=(1, 2))
    torch.testing.assert_close(tr.per_sample_loss(logits, y), expected)
    assert Trainer(_cfg(loss="ce"), tiny).class_weights is None
    with pytest.raises(ConfigError, match="^loss: expected one of dicece, ce, wce"):
        TrainConfig(loss="focal")


def test_a_step_with_non_finite_gradients_is_skipped(tiny):
    tr = Trainer(_cfg(epochs=1), tiny)
    plain = tr.per_sample_loss
    calls = []

    def poisoned(logits, y):
        calls.append(1)
        out = plain(logits, y)
        return out * float("inf") if len(calls) == 2 else out  # the second step's gradients

    tr.per_sample_loss = poisoned
    seen = []

    class Snap(Callback):
        def on_batch_end(self, trainer, batch):
            seen.append([p.detach().clone() for p in trainer.model.parameters()])

    tr.callbacks.append(Snap())
    tr.fit()
    assert tr.skipped_steps == 1 and tr.history[-1]["skipped_steps"] == 1.0
    # the skipped step left the weights as they were; every weight stays finite
    assert all(torch.equal(a, b) for a, b in zip(seen[0], seen[1], strict=True))
    assert all(torch.isfinite(p).all() for p in tr.model.parameters())


def test_training_with_ignored_masks_is_finite(tiny):
    from noisyseg.train import IGNORE_INDEX

    tr = Trainer(_cfg(epochs=1), tiny)
    idx = tr.train_idx.numpy()
    masks = tiny.masks[idx].copy()
    masks[: len(idx) // 2] = IGNORE_INDEX  # half the training masks dropped
    masks[len(idx) // 2:, :, :8] = IGNORE_INDEX
    tr.replace_masks(idx, masks)
    rec = Recorder()
    tr.callbacks.append(rec)
    tr.fit()
    assert all(torch.isfinite(loss).all() for loss in rec.losses)
    assert np.isfinite(tr.history[-1]["train_loss"])


def test_precision_and_memory_order_options(tiny):
    with pytest.raises(ConfigError, match="^precision: expected one of auto, fp32, bf16, fp16"):
        TrainConfig(precision="half")
    with pytest.raises(ConfigError, match="^precision: fp16 needs a CUDA device"):
        Trainer(_cfg(precision="fp16", device="cpu"), tiny)
    # channels-last is the same arithmetic in another memory order: the same losses up to
    # rounding, the network's weights held channels-last
    with pytest.raises(ConfigError, match="^memory_format: expected one of auto, channels_last"):
        TrainConfig(memory_format="nhwc")
    last = Trainer(_cfg(augment=False, device="cpu", memory_format="channels_last",
                        precision="fp32"), tiny)
    assert last.model.net.down[1][0].weight.is_contiguous(memory_format=torch.channels_last)
    flat = Trainer(_cfg(augment=False, device="cpu", memory_format="contiguous",
                        precision="fp32"), tiny)
    assert not flat.model.net.down[1][0].weight.is_contiguous(memory_format=torch.channels_last)
    a, b = last.fit().history, flat.fit().history
    assert [h["train_loss"] for h in a] == pytest.approx([h["train_loss"] for h in b], rel=1e-4)
    # bfloat16 autocast: the forward pass in bf16, the weights and the losses in float32,
    # the same seed giving the same numbers
    seen = []

    class Dtypes(Callback):
        def on_batch_end(self, trainer, batch):
            seen.append((batch.logits.dtype, batch.losses.dtype))

    bf = Trainer(_cfg(precision="bf16", device="cpu"), tiny, [Dtypes()]).fit()
    again = Trainer(_cfg(precision="bf16", device="cpu"), tiny).fit()
    assert set(seen) == {(torch.bfloat16, torch.float32)}
    assert bf.settings["precision"] == "bf16" and last.settings["memory_format"] == "channels_last"
    assert flat.settings == {"precision": "fp32", "memory_format": "contiguous"}
    assert next(bf.model.parameters()).dtype == torch.float32
    assert bf.history[-1]["train_loss"] == again.history[-1]["train_loss"]
    assert bf.history[-1]["train_loss"] == pytest.approx(a[-1]["train_loss"], rel=0.05)
    assert bf.predict(tiny.indices("test")).dtype == np.uint8


@pytest.mark.parametrize("capability,threads,precision,expected", [
    ("AVX512", 1, "fp32", "channels_last"),  # the one case measured faster channels-last
    ("AVX512", 2, "fp32", "contiguous"),     # channels-last batch norm uses one thread
    ("AVX512", 1, "bf16", "contiguous"),
    ("AVX2", 1, "fp32", "contiguous"),
    ("DEFAULT", 1, "fp32", "contiguous")])
def test_auto_memory_format_follows_the_measurements(tiny, monkeypatch, capability, threads,
                                                      precision, expected):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    before = torch.get_num_threads()
    try:
        tr = Trainer(_cfg(device="cpu", threads=threads, precision=precision), tiny)
    finally:
        torch.set_num_threads(before)
    assert tr.settings == {"precision": precision, "memory_format": expected}
