"""Inputs of any size: padding to the network's multiple and cropping its output back."""

import pytest
import torch
import torch.nn.functional as F

from noisyseg.models import (
    MODELS,
    PadToMultiple,
    build_model,
    crop_padding,
    input_geometry,
    pad_to_multiple,
    padded_shape,
    padding,
)


def test_padded_shape_and_split_by_hand():
    # 77 -> 80 (3: 1 before, 2 after), 65 -> 80 (15: 7 before, 8 after), as nnU-Net splits
    assert padded_shape((77, 65), multiple=16) == (80, 80)
    assert padding((77, 65), multiple=16) == ((1, 2), (7, 8))
    assert padding((64, 32), multiple=16) == ((0, 0), (0, 0))
    assert padding((9, 20, 27), multiple=16) == ((3, 4), (6, 6), (2, 3))
    # a minimum size, rounded up to the multiple
    assert padded_shape((5, 40), multiple=1, min_size=16) == (16, 40)
    assert padded_shape((5, 40), multiple=16, min_size=20) == (32, 48)
    with pytest.raises(ValueError, match="multiple"):
        padded_shape((5,), multiple=0)


def test_pad_to_multiple_pads_zeros_around_and_crops_back():
    x = torch.arange(1.0, 1.0 + 2 * 3 * 5).reshape(1, 2, 3, 5)
    xp, region = pad_to_multiple(x, multiple=4)
    assert xp.shape == (1, 2, 4, 8) and region == (slice(0, 3), slice(1, 6))
    torch.testing.assert_close(crop_padding(xp, region), x)
    assert float(xp.sum()) == float(x.sum())  # only zeros added
    assert xp[..., 3, :].abs().sum() == 0 and xp[..., 0].abs().sum() == 0
    same, region = pad_to_multiple(x, multiple=1)
    assert same is x and region == (slice(0, 3), slice(0, 5))


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("shape", [(77, 65), (40, 33), (9, 20, 27)])
def test_logits_have_the_input_size(name, shape):
    net = build_model(name, n_classes=3, width=2, spatial_dims=len(shape)).eval()
    model = PadToMultiple(net)
    x = torch.randn(2, 1, *shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 3, *shape)
        # what the wrapper does, by hand: pad, the network, crop
        xp, region = pad_to_multiple(x, multiple=model.multiple, min_size=model.min_size)
        torch.testing.assert_close(out, crop_padding(net(xp), region))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_divisible_sizes_are_the_network_itself(name):
    torch.manual_seed(0)
    net = build_model(name, n_classes=2, width=2).eval()
    model = PadToMultiple(net)
    x = torch.randn(2, 1, 64, 32)
    with torch.no_grad():
        assert torch.equal(model(x), net(x))


def test_stated_geometry():
    assert input_geometry(build_model("unet", n_classes=2, depth=3)) == (8, 8)
    assert input_geometry(build_model("segnet", n_classes=2, depth=4)) == (1, 16)
    assert input_geometry(build_model("fcn32", n_classes=2)) == (32, 32)
    assert input_geometry(torch.nn.Conv2d(1, 2, 1)) == (1, 1)
    # SegNet processes odd sizes as they are: no padding, the network's own numbers
    net = build_model("segnet", n_classes=2, width=2).eval()
    x = torch.randn(1, 1, 77, 65)
    with torch.no_grad():
        assert torch.equal(PadToMultiple(net)(x), net(x))


def test_state_dict_is_the_networks():
    torch.manual_seed(0)
    net = build_model("unet", n_classes=2, width=2, depth=2)
    model = PadToMultiple(net)
    assert list(model.state_dict()) == list(net.state_dict())
    other = PadToMultiple(build_model("unet", n_classes=2, width=2, depth=2))
    other.load_state_dict(net.state_dict())  # strict: the same keys
    bare = build_model("unet", n_classes=2, width=2, depth=2)
    bare.load_state_dict(model.state_dict())
    x = torch.randn(1, 1, 30, 21)
    model.eval(), other.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), other(x))


@pytest.mark.parametrize("shape", [(77, 65), (9, 20, 27)])
def test_input_gradient_has_the_input_shape_and_ignores_padding(shape):
    torch.manual_seed(0)
    model = PadToMultiple(build_model("unet", n_classes=2, width=2, depth=2,
                                      spatial_dims=len(shape))).eval()
    x = torch.randn(2, 1, *shape, requires_grad=True)
    y = torch.randint(0, 2, (2, *shape))
    F.cross_entropy(model(x), y).backward()
    assert x.grad is not None and x.grad.shape == x.shape
    # the same as the gradient of the padded input, cropped back
    xp, region = pad_to_multiple(x.detach(), multiple=model.multiple)
    xp.requires_grad_(True)
    F.cross_entropy(crop_padding(model.net(xp), region), y).backward()
    torch.testing.assert_close(x.grad, crop_padding(xp.grad, region))
