import pytest
import torch

from noisyseg.errors import ConfigError
from noisyseg.models import MODELS, build_model


@pytest.mark.parametrize("name", sorted(MODELS) + ["monai:BasicUNet", "monai:UNet"])
@pytest.mark.parametrize("n_classes", [2, 4])
def test_shapes(name, n_classes):
    m = build_model(name, n_classes=n_classes)
    out = m(torch.randn(2, 1, 64, 64))
    assert out.shape == (2, n_classes, 64, 64)


def test_width_doubles_per_downsampling():
    m = build_model("unet", n_classes=2, width=6, depth=3)
    widths = [blk[0].out_channels for blk in m.down]
    assert widths == [6, 12, 24, 48]


def test_bad_model_names():
    with pytest.raises(ConfigError, match="unknown network"):
        build_model("resnet", n_classes=2)
    with pytest.raises(ConfigError, match="has no network"):
        build_model("monai:NotANet", n_classes=2)
    with pytest.raises(ConfigError, match="unet"):
        build_model("unet", n_classes=2, colour=3)
