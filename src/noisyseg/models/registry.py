"""One place mapping a network name to its constructor (``noisyseg models`` lists them)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from noisyseg.errors import ConfigError
from noisyseg.models.nets import FCN32, SegNet, UNet

__all__ = ["MODELS", "build_model", "list_models"]

#: Built-in networks by name (``unet``: :class:`UNet`, ``segnet``: :class:`SegNet`,
#: ``fcn32``: :class:`FCN32`), each called ``cls(in_channels, n_classes, spatial_dims=..,
#: **options)`` by :func:`build_model`; ``monai:NAME`` reaches any network in
#: ``monai.networks.nets``.
MODELS: dict[str, Callable[..., nn.Module]] = {"unet": UNet, "segnet": SegNet, "fcn32": FCN32}


def build_model(name: str, *, in_channels: int = 1, n_classes: int, spatial_dims: int = 2,
                **options: Any) -> nn.Module:
    """Build the network ``name`` with ``options`` (e.g. ``width=6``) for 2-D or 3-D inputs.

    ``monai:NAME`` builds ``monai.networks.nets.NAME(spatial_dims=spatial_dims,
    in_channels=..., out_channels=n_classes, **options)`` (``dimensions=`` for networks that
    take that instead; ``monai:UNet`` defaults to ``channels=(16, 32, 64, 128)`` and
    ``strides=(2, 2, 2)``). No weights are ever downloaded.

    Parameters
    ----------
    name : str
        A key of :data:`MODELS` (``"unet"``, ``"segnet"``, ``"fcn32"``) or ``"monai:NAME"``.
    in_channels : int, default 1
        Input channels (image modalities).
    n_classes : int
        Output channels: one logit per class, background included.
    spatial_dims : {2, 3}, default 2
        2 for ``(N, C, H, W)`` images, 3 for ``(N, C, D, H, W)`` volumes.
    **options
        Further constructor arguments, e.g. ``width=6, depth=4`` for the built-in networks.

    Returns
    -------
    torch.nn.Module
        The network, with freshly initialised weights.

    Raises
    ------
    ConfigError
        An unknown network or option, ``spatial_dims`` not 2 or 3 (built-in networks), or
        ``pretrained`` asked of a MONAI network.

    Examples
    --------
    >>> import torch
    >>> net = build_model("unet", n_classes=3, width=2, depth=2).eval()
    >>> type(net).__name__, tuple(net(torch.zeros(1, 1, 16, 16)).shape)
    ('UNet', (1, 3, 16, 16))
    >>> build_model("resnet", n_classes=2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: model: unknown network 'resnet'; expected one of ['fcn32', ...
    >>> build_model("unet", n_classes=2, spatial_dims=1)
    Traceback (most recent call last):
    ...
    noisyseg.errors.ConfigError: spatial_dims: expected 2 or 3, got 1
    """
    if name.startswith("monai:"):
        from monai.networks import nets

        cls = getattr(nets, name.split(":", 1)[1], None)
        if cls is None or not isinstance(cls, type):
            raise ConfigError(f"model: {name}: monai.networks.nets has no network "
                              f"{name.split(':', 1)[1]!r}")
        kwargs = {"spatial_dims": spatial_dims, "in_channels": in_channels, "out_channels": n_classes}
        params = inspect.signature(cls).parameters
        if "spatial_dims" not in params and "dimensions" in params:
            kwargs["dimensions"] = kwargs.pop("spatial_dims")
        if name == "monai:UNet":
            kwargs.update(channels=(16, 32, 64, 128), strides=(2, 2, 2))
        kwargs.update(options)
        if "pretrained" in kwargs:
            raise ConfigError(f"model: {name}: pretrained weights are never downloaded")
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"model: {name}: {exc}") from exc
    if name not in MODELS:
        raise ConfigError(f"model: unknown network {name!r}; expected one of "
                          f"{sorted(MODELS)} or monai:NAME (e.g. monai:BasicUNet)")
    if spatial_dims not in (2, 3):
        raise ConfigError(f"spatial_dims: expected 2 or 3, got {spatial_dims!r}")
    try:
        return MODELS[name](in_channels, n_classes, spatial_dims=spatial_dims, **options)
    except TypeError as exc:
        raise ConfigError(f"model: {name}: {exc}") from exc


def list_models() -> dict[str, str]:
    """Return the names and one-line descriptions of the built-in networks.

    Returns
    -------
    dict of str to str
        Name (a key of :data:`MODELS`) to the first line of the network's docstring, in
        :data:`MODELS` order (what ``noisyseg models`` lists).

    Examples
    --------
    >>> list(list_models())
    ['unet', 'segnet', 'fcn32']
    >>> list_models()["unet"].startswith("Segment with a U-Net")
    True
    """
    return {k: (v.__doc__ or "").strip().splitlines()[0] for k, v in MODELS.items()}
