"""Training and prediction on samples whose sizes are not multiples of the network's."""

import numpy as np
import pytest
import torch

from noisyseg.data import Samples
from noisyseg.errors import ConfigError
from noisyseg.models import crop_padding, pad_to_multiple
from noisyseg.train import Callback, TrainConfig, Trainer, load_checkpoint
from noisyseg.train.trainer import _InputGradient


def _boxes(shape, n=8, seed=0):
    """``n`` samples of ``shape``: a noisy bright box labelled 1; 5 train, 1 val, 2 test."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, *shape), np.uint8)
    for i in range(n):
        lo = [int(rng.integers(1, max(2, s // 4))) for s in shape]
        masks[(i, *(slice(a, a + s // 2) for a, s in zip(lo, shape, strict=True)))] = 1
    images = (2 * masks + rng.normal(0, 0.5, masks.shape)).astype(np.float32)
    split = np.array(["train"] * (n - 3) + ["val", "test", "test"])
    return Samples(images, masks, ("background", "box"), tuple(f"s{i}" for i in range(n)),
                      split)


def _cfg(**kw):
    base = dict(model="unet", model_options={"width": 4, "depth": 2}, epochs=2, batch_size=2,
                threads=1, seed=0)
    return TrainConfig(**(base | kw))


class _Grads(Callback):
    def __init__(self):
        self.batches = []

    def on_train_start(self, trainer):
        trainer.track_input_grad = True

    def on_batch_end(self, trainer, batch):
        self.batches.append(batch)


@pytest.mark.parametrize("model", ["unet", "segnet", "fcn32"])
def test_odd_images_train_and_predict_on_their_own_grid(model):
    ds = _boxes((77, 65))
    options = {"width": 4} if model == "fcn32" else {"width": 4, "depth": 2}
    rec = _Grads()
    tr = Trainer(_cfg(model=model, model_options=options), ds, [rec]).fit()
    assert tr.patch_size == (77, 65) and not tr.patched
    for b in rec.batches:  # logits and input gradients (VOG's) on the samples' grid
        assert b.logits.shape == (2, 2, 77, 65) and b.inputs.grad.shape == (2, 1, 77, 65)
    assert tr.predict_logits(ds.indices("test")).shape == (2, 2, 77, 65)
    assert tr.predict(ds.indices("test")).shape == (2, 77, 65)
    assert np.isfinite(tr.history[-1]["train_loss"])


def test_volumes_of_odd_size_train_and_predict_whole_and_by_patches(tmp_path):
    ds = _boxes((9, 20, 27))
    rec = _Grads()
    whole = Trainer(_cfg(), ds, [rec]).fit()  # 9x20x27 fits the budget: whole volumes
    assert not whole.patched and whole.model.multiple == 4
    assert rec.batches[0].inputs.grad.shape == (2, 1, 9, 20, 27)
    assert whole.predict(ds.indices("test")).shape == (2, 9, 20, 27)
    patched = Trainer(_cfg(patch_size=[8, 12, 20]), ds).fit()  # sliding window, odd patches
    assert patched.patched
    assert patched.predict_logits(ds.indices("test")).shape == (2, 2, 9, 20, 27)
    # the checkpoint loads (weights only) into a model that pads as the trainer's did
    patched.save(tmp_path / "m.pt")
    model, ckpt = load_checkpoint(tmp_path / "m.pt")
    assert ckpt["input_padding"] == {"multiple": 4, "min_size": 4}
    assert list(ckpt["state_dict"]) == list(patched.model.net.state_dict())
    x = torch.randn(1, 1, 9, 20, 27)
    patched.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), patched.model(x))


def test_the_padded_area_never_reaches_the_loss():
    """Logits made NaN wherever the network sees padding leave the loss, its gradients and
    the input gradient finite and unchanged: no padded voxel counts, as background or else."""
    ds = _boxes((77, 65))
    tr = Trainer(_cfg(augment=False), ds)
    tr.model.train()
    x = tr.images[[0, 1]]
    y = tr.train_targets[[0, 1]].long()
    _, region = pad_to_multiple(x, multiple=tr.model.multiple)

    def losses():
        xg = x.clone().requires_grad_(True)
        tr.model.zero_grad(set_to_none=True)
        loss = tr.per_sample_loss(tr.model(xg), y)
        loss.sum().backward()
        head = tr.model.net.head.weight.grad.clone()
        return loss.detach(), xg.grad, head

    plain = losses()

    def poison(module, inputs, out):
        bad = torch.full_like(out, float("nan"))
        crop_padding(bad, region).copy_(crop_padding(out, region))
        return bad

    handle = tr.model.net.register_forward_hook(poison)
    try:
        poisoned = losses()
    finally:
        handle.remove()
    for a, b in zip(plain, poisoned, strict=True):
        assert torch.isfinite(b).all()
        torch.testing.assert_close(a, b)
    assert plain[1].shape == x.shape
    # and it is the loss of the cropped logits of the padded input
    with torch.no_grad():
        xp, _ = pad_to_multiple(x, multiple=tr.model.multiple)
        torch.testing.assert_close(plain[0], tr.per_sample_loss(
            crop_padding(tr.model.net(xp), region), y))


def test_divisible_sizes_call_the_network_as_it_is():
    ds = _boxes((32, 64))
    tr = Trainer(_cfg(), ds)
    tr.model.eval()
    x = tr.images[[0, 1]]
    with torch.no_grad():
        assert torch.equal(tr.model(x), tr.model.net(x))


@pytest.mark.parametrize("shape", [(77, 65), (9, 20, 27), (32, 32)])
def test_input_gradient_capture_on_padded_inputs_equals_autograd(shape):
    from noisyseg.models import PadToMultiple, build_model

    torch.manual_seed(0)
    model = PadToMultiple(build_model("unet", n_classes=3, width=2, depth=2,
                                      spatial_dims=len(shape)))
    grab = _InputGradient(model, (1, *shape), torch.device("cpu"))
    assert grab.handle is not None  # the shortcut holds through the padding
    assert (grab.region is None) == (shape == (32, 32))
    x = torch.randn(2, 1, *shape)
    y = torch.randint(0, 3, (2, *shape))
    ref = x.clone().requires_grad_(True)
    torch.nn.functional.cross_entropy(model(ref), y).backward()
    grab.prepare(x)
    (torch.nn.functional.cross_entropy(model(x), y) * 4).backward()
    grab.finish(4.0)
    assert x.grad.shape == x.shape
    torch.testing.assert_close(x.grad, ref.grad, rtol=1e-4, atol=1e-6 * float(ref.grad.abs().max()))
    grab.close()


def test_a_network_stating_no_sizes_is_padded_to_what_works():
    ds = _boxes((77, 65))
    # monai's UNet with 3 stride-2 steps: 77x65 fails as it is, multiples of 8 work
    tr = Trainer(_cfg(model="monai:UNet", model_options={"channels": (4, 8, 16, 32)}), ds)
    assert tr.model.multiple == 8
    assert tr.predict(ds.indices("test")).shape == (2, 77, 65)
    # one that processes the size as it is is left unpadded
    assert Trainer(_cfg(model="monai:UNet", model_options={"channels": (4, 8, 16, 32)}),
                   _boxes((40, 48))).model.multiple == 1


def test_a_size_no_padding_helps_is_one_clear_error():
    with pytest.raises(ConfigError, match=r"^model: monai:UNet cannot process 40x40 inputs .*"
                       r"padded to multiples of 2 to 64 neither.*--slice-size .*--patch-size"):
        Trainer(_cfg(model="monai:UNet", model_options={"channels": (4, 8, 16),
                                                        "strides": (3, 3)}), _boxes((40, 40)))
