"""A short training loop with per-sample bookkeeping and callbacks."""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.losses import DiceLoss

from noisyseg.data import CaseDataset, Samples
from noisyseg.errors import ConfigError, DataError
from noisyseg.evaluate import dice
from noisyseg.models import PadToMultiple, build_model, crop_padding, input_geometry, padded_shape
from noisyseg.train.callbacks import BatchResult, Callback
from noisyseg.train.config import TrainConfig

__all__ = ["IGNORE_INDEX", "Trainer", "choose_patch_size", "class_balance_weights",
           "load_checkpoint", "normalise_images", "select_device"]

log = logging.getLogger(__name__)

#: The training-mask label (255, an int) that leaves a pixel out of the loss: refurbishment's
#: unsure, dropped and boundary-band pixels (:meth:`Trainer.replace_masks`).
IGNORE_INDEX = 255


def select_device(name: str = "auto") -> torch.device:
    """Return the torch device to train on: CUDA when available (or asked for), else the CPU.

    Parameters
    ----------
    name : {'auto', 'cpu', 'cuda'}, default 'auto'
        ``auto``: CUDA when a CUDA device is available, else the CPU; ``cpu`` or ``cuda``:
        that device (:attr:`TrainConfig.device`).

    Returns
    -------
    torch.device

    Raises
    ------
    ConfigError
        ``name`` is ``cuda`` and no CUDA device is available.

    Examples
    --------
    >>> select_device("cpu")
    device(type='cpu')
    >>> select_device().type in ("cpu", "cuda")
    True
    """
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for but no CUDA device is available")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


#: Voxels in a training patch when none is given (:func:`choose_patch_size`): 64^3 on a
#: CPU, 128^3 on a GPU (nnU-Net's 3d_fullres patches are of that order).
PATCH_BUDGET = {"cpu": 64**3, "cuda": 128**3}


def choose_patch_size(shape: Sequence[int], *, budget: int, divisor: int = 16) -> list[int]:
    """Choose a training patch size for samples of ``shape`` within a voxel budget.

    The whole sample when it has at most ``budget`` voxels, else the sample's shape with its
    longest axis halved (rounded down to a multiple of ``divisor``, never below it) until it
    fits, or until the longest axis is down to ``divisor``. Axes never halved keep the
    sample's size, a multiple or not (the trainer's model pads what is not). The trainer
    uses it when :attr:`TrainConfig.patch_size` is None, with a budget of
    :data:`PATCH_BUDGET` for its device.

    Parameters
    ----------
    shape : sequence of int
        The sample's size in voxels per spatial axis, e.g. ``(D, H, W)``.
    budget : int
        Most voxels a patch may hold (keyword only, no default).
    divisor : int, default 16
        Halved axes are rounded down to multiples of this many voxels and never go below
        it (32 for ``fcn32``, 16 otherwise in the trainer).

    Returns
    -------
    list of int
        The patch size, one entry per axis of ``shape``; may exceed ``budget`` when every
        axis is already down to ``divisor``.

    Examples
    --------
    >>> choose_patch_size((32, 64, 64), budget=64**3)
    [32, 64, 64]
    >>> choose_patch_size((64, 256, 256), budget=64**3)
    [64, 64, 64]
    """
    patch = [int(v) for v in shape]
    while int(np.prod(patch)) > budget:
        i = int(np.argmax(patch))
        if patch[i] <= divisor:
            break
        patch[i] = max(divisor, (patch[i] // 2) // divisor * divisor)
    return patch


def normalise_images(images: np.ndarray) -> torch.Tensor:
    """Z-score each image by its own mean and standard deviation and add a channel axis.

    What the trainer feeds its network (for training patches the statistics are those of
    the whole image). A standard deviation below 1e-6 (a constant image) is taken as 1e-6.

    Parameters
    ----------
    images : (N, *S) array_like of float
        N images or volumes of raw intensities (any unit).

    Returns
    -------
    (N, 1, *S) float32 torch.Tensor
        Each image minus its mean, divided by its (unbiased) standard deviation.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = normalise_images(rng.normal(5.0, 2.0, size=(3, 8, 8)))
    >>> tuple(x.shape), x.dtype
    ((3, 1, 8, 8), torch.float32)
    >>> [round(float(v), 4) for v in x.mean(dim=(1, 2, 3)).abs()]
    [0.0, 0.0, 0.0]
    >>> [round(float(v), 4) for v in x.std(dim=(1, 2, 3))]
    [1.0, 1.0, 1.0]
    """
    x = torch.as_tensor(np.asarray(images, dtype=np.float32))
    dims = tuple(range(1, x.ndim))
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True).clamp_min(1e-6)
    return ((x - mean) / std)[:, None].contiguous()


class _Normalised:
    """The dataset's images as :func:`normalise_images` gives them, computed per request:
    ``images[idx]`` is the ``(len(idx), 1, *S)`` tensor of those images. Keeps no second,
    normalised copy of the whole dataset (0.84 GB for the 12,800 slices of 200 CT volumes),
    only each image's mean and standard deviation once computed, so that a patch is z-scored
    by its whole image's statistics without normalising the whole image (:meth:`raw`, then
    :meth:`normalise`)."""

    def __init__(self, images: np.ndarray) -> None:
        self._images = images
        self._mean = torch.full((len(images),), float("nan"))
        self._std = torch.full((len(images),), float("nan"))

    def __len__(self) -> int:
        return len(self._images)

    def raw(self, idx: torch.Tensor | np.ndarray | Sequence[int]) -> torch.Tensor:
        """The images at ``idx`` as they are: ``(len(idx), 1, *S)`` float32."""
        x = self._images[np.asarray(idx, dtype=np.int64)]
        return torch.as_tensor(np.asarray(x, dtype=np.float32))[:, None]

    def normalise(self, x: torch.Tensor, idx: torch.Tensor | np.ndarray | Sequence[int]
                  ) -> torch.Tensor:
        """Z-score ``x`` (the images at ``idx``, or patches of them) by each whole image's
        mean and standard deviation."""
        idx = torch.as_tensor(np.asarray(idx, dtype=np.int64))
        missing = idx[torch.isnan(self._mean[idx])].unique()
        if len(missing):
            whole = self.raw(missing)
            dims = tuple(range(1, whole.ndim))
            self._mean[missing] = whole.mean(dim=dims)
            self._std[missing] = whole.std(dim=dims).clamp_min(1e-6)
        shape = (len(idx), *([1] * (x.ndim - 1)))
        return ((x - self._mean[idx].reshape(shape)) / self._std[idx].reshape(shape)).contiguous()

    def __getitem__(self, idx: torch.Tensor | np.ndarray | Sequence[int]) -> torch.Tensor:
        return self.normalise(self.raw(idx), idx)


class _InputGradient:
    """d(loss)/d(input) of each training step, for detectors, at a fraction of autograd's cost.

    Asking autograd for the input gradient makes it run the first convolution's
    input-gradient kernel, which on CPU is slow for one input channel (10 ms for a
    16 x 6 x 128 x 128 batch, ~5% of a default training step). When the model's first
    operation on the input is a stride-1, "same"-padded, ungrouped ``Conv2d`` (or ``Conv3d``), the same
    gradient is a forward convolution of that layer's output gradient (captured with a hook;
    autograd computes it anyway for the weights) with the flipped kernel: 3 ms. The
    shortcut is checked against autograd on a random probe first; models where it does not
    hold (another first layer, or the input also reaching the output by another path) fall
    back to autograd. Either way ``x.grad`` holds the gradient after :meth:`finish`.

    When :class:`~noisyseg.models.PadToMultiple` pads ``x`` (``shape``, without the batch
    axis, not a multiple), the convolution sees the padded input, taken to be the first
    input of that padded shape after :meth:`prepare`; the gradient is that of the padded
    input cropped back to ``x``'s shape (padding is the identity on ``x``'s voxels).
    """

    def __init__(self, model: torch.nn.Module, shape: tuple[int, ...], device: torch.device) -> None:
        self.conv = next((m for m in model.modules()
                          if isinstance(m, (torch.nn.Conv2d, torch.nn.Conv3d))), None)
        self.x: torch.Tensor | None = None
        self.grad_out: torch.Tensor | None = None
        self.handle = None
        #: Where ``x`` lies in the padded input, and that input's (C, *P); None: no padding.
        self.region: tuple[slice, ...] | None = None
        self.padded: tuple[int, ...] | None = None
        self._pending = False
        pads = model.padding(shape[1:]) if isinstance(model, PadToMultiple) else ()
        if any(lo or hi for lo, hi in pads):
            self.region = tuple(slice(lo, lo + int(s)) for (lo, _), s in zip(pads, shape[1:],
                                                                               strict=True))
            self.padded = (shape[0], *(int(s) + lo + hi for (lo, hi), s in zip(pads, shape[1:],
                                                                                strict=True)))
        if self.conv is not None and self._adjoint_is_a_conv(self.conv):
            self.handle = self.conv.register_forward_hook(self._hook)
            if not self._check(model, shape, device):
                self.close()

    def _check(self, model: torch.nn.Module, shape: tuple[int, ...], device: torch.device) -> bool:
        """Does the captured gradient equal autograd's on a random probe (eval mode, no
        parameter gradients, private random numbers)? False when the input also reaches the
        output by another path than this convolution."""
        gen = torch.Generator(device=device).manual_seed(0)
        probe = torch.randn(1, *shape, generator=gen, device=device, requires_grad=True)
        was_training = model.training
        model.eval()
        try:
            self.x, self.grad_out, self._pending = probe, None, True
            out = model(probe)
            weights = torch.randn(out.shape, generator=gen, device=device)
            (ref,) = torch.autograd.grad((out * weights).sum(), probe)
            if self.grad_out is None:
                return False
            mine = self._crop(self._from_output_grad(self.grad_out))
            return bool(torch.allclose(mine, ref, rtol=1e-3, atol=1e-5 * float(ref.abs().max())))
        finally:
            model.train(was_training)
            self.x = self.grad_out = None
            self._pending = False

    def _crop(self, grad: torch.Tensor) -> torch.Tensor:
        """The gradient of the padded input cropped back to the input's voxels."""
        return grad if self.region is None else crop_padding(grad, self.region).contiguous()

    def _from_output_grad(self, grad_out: torch.Tensor) -> torch.Tensor:
        """The input gradient from the convolution's output gradient (stride 1, "same")."""
        w = self.conv.weight.detach().to(grad_out.dtype)  # type: ignore[union-attr]
        k = w.shape[2:]
        conv = F.conv2d if len(k) == 2 else F.conv3d
        flip = tuple(range(2, w.ndim))
        return conv(grad_out, w.flip(flip).transpose(0, 1), padding=tuple(n // 2 for n in k))

    @staticmethod
    def _adjoint_is_a_conv(conv: torch.nn.Conv2d | torch.nn.Conv3d) -> bool:
        k = conv.kernel_size
        ones = (1,) * len(k)
        return (conv.stride == ones and conv.dilation == ones and conv.groups == 1
                and conv.padding_mode == "zeros" and all(n % 2 for n in k)
                and conv.padding in ("same", tuple(n // 2 for n in k)))

    def _hook(self, module: torch.nn.Module, inputs: tuple[torch.Tensor, ...],
              output: torch.Tensor) -> None:
        if self.x is None or not output.requires_grad:
            return
        padded_input = (self._pending and self.padded is not None
                        and tuple(inputs[0].shape[1:]) == self.padded)
        if inputs[0] is self.x or padded_input:
            self._pending = False
            output.register_hook(self._store)

    def _store(self, grad: torch.Tensor) -> None:
        self.grad_out = grad

    def prepare(self, x: torch.Tensor) -> None:
        """Call before the forward pass of the batch ``x``."""
        self.x, self.grad_out, self._pending = x, None, True
        if self.handle is None:
            x.requires_grad_(True)

    def finish(self, scale: float = 1.0) -> None:
        """Call after the backward pass: sets ``x.grad`` (divided by the loss ``scale``)."""
        x = self.x
        if self.handle is not None and x is not None and self.grad_out is not None:
            x.grad = self._crop(self._from_output_grad(self.grad_out)).to(x.dtype)
        if x is not None and x.grad is not None and scale != 1.0:
            x.grad /= scale
        self.x = self.grad_out = None
        self._pending = False

    def close(self) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (None: float32 throughout).

    ``auto`` is float16 mixed precision on CUDA and float32 on every CPU, so that a CPU run
    gives the same kind of numbers on any machine; on a CPU with native bfloat16 a hint
    says that ``bf16`` would train 2.4-3.3x faster (measured on a Xeon with AMX).
    """
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        if _cpu_has_bf16():
            log.info("precision: this CPU has native bfloat16 (AMX/AVX512-BF16); "
                     "precision='bf16' (--precision bf16) trains about 2.5x faster")
        return None
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("precision: fp16 needs a CUDA device; on a CPU use bf16 or fp32")
    if precision == "bf16" and device.type == "cpu" and not _cpu_has_bf16():
        log.warning("precision: this CPU has no native bfloat16 (AVX512-BF16/AMX); bf16 "
                    "training will be slower than fp32")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _memory_format(name: str, device: torch.device, spatial_dims: int,
                   amp_dtype: torch.dtype | None = None) -> torch.memory_format:
    """The torch memory format of ``TrainConfig.memory_format`` on ``device``.

    ``auto`` follows what was measured on CPUs (docs/choices.md): channels-last only for
    float32 on one thread of an AVX-512 CPU (1.5-1.8x faster there). PyTorch 2.13's
    channels-last batch norm does not use a second thread, so on two threads it was up to
    1.3x slower in float32 and 2.8x slower in bfloat16 than contiguous. On CUDA
    channels-last (PyTorch's advice for tensor cores).
    """
    if name == "auto":
        if device.type == "cuda":
            name = "channels_last"
        else:
            fast = (amp_dtype is None and torch.get_num_threads() == 1
                    and torch.backends.cpu.get_cpu_capability().startswith("AVX512"))
            name = "channels_last" if fast else "contiguous"
    if name == "contiguous":
        return torch.contiguous_format
    return torch.channels_last if spatial_dims == 2 else torch.channels_last_3d


def _cpu_has_bf16() -> bool:
    """Does this CPU do bfloat16 arithmetic natively (AMX tiles or AVX512-BF16)? oneDNN's own
    check also says yes for plain AVX-512, where bfloat16 is emulated."""
    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def class_balance_weights(masks: np.ndarray | Iterable[np.ndarray], n_classes: int) -> torch.Tensor:
    """Compute study A's loss weights: the background weighted by the foreground's frequency.

    Study A's code kept every foreground pixel in its cross-entropy and a random share
    ``f`` of the background pixels, ``f`` the foreground (liver) frequency: in expectation
    a cross-entropy with background weight ``f`` and foreground weight 1. Here ``f`` is the
    share of labelled voxels of ``masks`` in any foreground class (labels
    :data:`IGNORE_INDEX` left out), every foreground class weighs 1, and the weights are
    scaled to average 1 over the voxels. The network then labels a voxel foreground where
    more than about ``f`` of the training labels there say so, not half of them.

    Parameters
    ----------
    masks : (N, *S) uint8 ndarray or iterable of (*S) ndarray
        Training masks (labels ``0..n_classes - 1``; :data:`IGNORE_INDEX` is not counted);
        read one at a time, so a generator keeps memory low.
    n_classes : int
        Number of classes, the background (label 0) included.

    Returns
    -------
    (n_classes,) float32 torch.Tensor
        ``[f, 1, ..., 1]`` scaled so that the voxel-weighted mean weight is 1; all ones when
        the masks hold no labelled voxel, only background or no background.

    Examples
    --------
    >>> masks = np.zeros((2, 4, 4), np.uint8)
    >>> masks[:, 0, :2] = 1  # 4 of 32 voxels are foreground: f = 1/8
    >>> w = class_balance_weights(masks, 2)
    >>> [round(float(v), 4) for v in w], round(float(w[0] / w[1]), 4)
    ([0.5333, 4.2667], 0.125)
    >>> class_balance_weights(np.zeros((1, 4, 4), np.uint8), 2).tolist()
    [1.0, 1.0]
    """
    counts = np.zeros(n_classes, dtype=np.int64)
    for m in masks:  # one sample at a time: no int64 copy of a large dataset
        counts += np.bincount(np.asarray(m).ravel(), minlength=256)[:n_classes]
    total = int(counts.sum())
    if total == 0 or counts[0] in (0, total):
        return torch.ones(n_classes)
    w = np.ones(n_classes)
    w[0] = (total - counts[0]) / total
    w *= total / float((w * counts).sum())
    return torch.as_tensor(w, dtype=torch.float32)


class Trainer:
    """Train a segmentation network on the training masks of samples held in memory.

    Training uses ``dataset.masks`` (possibly noisy); validation uses the truth
    (``dataset.clean_masks`` when known), the mean foreground Dice on the validation split
    after every epoch (on the training split when there is no validation sample). The
    best-on-validation weights are kept and loaded at the end of :meth:`fit`. Making the
    trainer builds the network and seeds PyTorch's global generator with ``config.seed``
    (and, with ``config.threads``, sets PyTorch's thread count process-wide).

    Images and volumes are one code path: a dataset of ``(N, D, H, W)`` volumes gets the
    3-D form of the network (``spatial_dims=3``), patches and sliding-window prediction.

    Parameters
    ----------
    config : TrainConfig
        The run's settings (network, epochs, batch size, learning rate, loss, device, ...).
    dataset : Samples or CaseDataset
        The samples (:func:`~noisyseg.data.sample_view`), or a dataset held in memory (2-D
        images, whose cases are their own samples). Its masks are never changed: the trainer
        copies them on the first :meth:`replace_masks`.
    callbacks : sequence of Callback, default ()
        Hooks called in this order during :meth:`fit` (detectors before the refurbisher that
        reads them; :class:`ProgressBar` for a progress bar).

    Attributes
    ----------
    config : TrainConfig
        As given.
    dataset : Samples or CaseDataset
        As given.
    callbacks : list of Callback
        As given.
    device : torch.device
        Where the network trains (:func:`select_device` of ``config.device``).
    model : PadToMultiple
        The network, taking samples and patches of any size: inputs are zero-padded to the
        sizes it can process and its logits cropped back (nnU-Net's padding), so logits,
        losses and input gradients are on the samples' own voxels. ``model.net`` is the
        network itself; both have the same ``state_dict``.
    optimizer : torch.optim.Adam
        Adam at ``config.lr``.
    train_idx : (n_train,) int64 tensor
        Dataset indices of the training samples.
    val_idx : (n_val,) int64 ndarray
        Dataset indices of the validation samples (the training ones when there are none).
    trusted_idx : int64 ndarray
        Samples whose masks are taken as right (the validation split unless
        :meth:`set_trusted` names others); ``trusted_source`` says where they came from.
    train_targets : (N, *S) uint8 tensor
        Current training masks of every sample (only training samples are used); change
        them with :meth:`replace_masks`. Pixels equal to :data:`IGNORE_INDEX` are left out
        of the loss. uint8, an eighth of int64's memory (1.5 GB less for the slices of 200 CT
        volumes); batches are cast to int64. Shares the dataset's uint8 masks until the first
        :meth:`replace_masks` copies them (0.84 GB for those slices), so the dataset's masks
        never change.
    class_weights : (C,) float32 tensor or None
        The ``wce`` loss's class weights (:func:`class_balance_weights` of the training
        masks); None for the other losses.
    steps_per_epoch : int
        ``config.steps_per_epoch``, or one pass over the training samples.
    patch_size : tuple of int
        The training patch in voxels (``config.patch_size``, or chosen from the data and the
        device); equal to the sample shape when training on whole samples.
    patched : bool
        Whether training uses patches smaller than the samples.
    amp_dtype : torch.dtype or None
        The forward pass's reduced precision (None: float32); ``amp`` is whether there is one.
    memory_format : torch.memory_format
        The memory order of the network and its inputs (``config.memory_format`` resolved).
    history : list of dict
        One row per epoch: epoch (1-based), train_loss, val_dice, images_per_s, seconds,
        skipped_steps.
    best_score : float
        Best validation mean Dice so far (-1.0 before the first epoch).
    best_epoch : int
        Its epoch, 1-based (-1 before the first epoch).
    best_state : dict or None
        A copy of the best weights' ``state_dict`` (None before the first epoch).
    epoch, step : int
        The current epoch (0-based) and the optimisation steps taken.
    skipped_steps : int
        Optimisation steps skipped for non-finite gradients.
    interrupted : bool
        Whether :meth:`fit` was stopped by Ctrl-C.
    track_input_grad : bool
        When true, ``BatchResult.inputs.grad`` holds d(loss)/d(input) (for detectors); read
        at every step. False by default.

    Raises
    ------
    DataError
        The dataset has no training sample.
    ConfigError
        ``config.device`` is ``cuda`` without a CUDA device; ``config.precision`` is
        ``fp16`` off CUDA; an unknown network or network option; ``config.patch_size`` of
        another number of axes than the samples or larger than them; a network that cannot
        process the training size (whatever the padding).

    Examples
    --------
    Train a tiny U-Net for two epochs on four 16 x 16 images (three for training, one for
    validation); a run on real data is in the how-to (docs/how-to/python.md).

    >>> from noisyseg.data import Samples
    >>> masks = np.zeros((4, 16, 16), np.uint8); masks[:, 4:12, 4:12] = 1
    >>> ds = Samples(images=masks.astype(np.float32), masks=masks,
    ...              class_names=("background", "lv"), sample_ids=("a", "b", "c", "d"),
    ...              split=np.array(["train", "train", "train", "val"]))
    >>> cfg = TrainConfig(epochs=2, batch_size=2, device="cpu", model_options={"width": 4})
    >>> trainer = Trainer(cfg, ds)
    >>> trainer.patch_size, trainer.patched, trainer.steps_per_epoch, trainer.total_steps
    ((16, 16), False, 2, 4)
    >>> trainer = trainer.fit()
    >>> len(trainer.history), trainer.step, 1 <= trainer.best_epoch <= 2
    (2, 4, True)
    >>> pred = trainer.predict([3])
    >>> pred.shape, pred.dtype
    ((1, 16, 16), dtype('uint8'))
    """

    def __init__(self, config: TrainConfig, dataset: Samples | CaseDataset,
                 callbacks: Sequence[Callback] = ()) -> None:
        self.config = config
        self.dataset = dataset
        self.callbacks = list(callbacks)
        self.device = select_device(config.device)
        if config.threads:
            torch.set_num_threads(int(config.threads))
        torch.manual_seed(config.seed)
        self.train_idx = torch.as_tensor(dataset.indices("train"))
        self.val_idx = dataset.indices("val")
        if len(self.train_idx) == 0:
            raise DataError(f"{dataset.source}: no training samples")
        if len(self.val_idx) == 0:
            self.val_idx = dataset.indices("train")
            log.warning("no validation samples: validating on the training masks")
        #: Samples whose masks are taken as right where a method needs right masks (the
        #: boundary calibration of ``disagree`` and ``--refurbish-calibrate``): the
        #: validation split unless the user names them (:meth:`set_trusted`).
        self.trusted_idx = np.asarray(self.val_idx)
        self.trusted_source = "validation split"
        options = dict(config.model_options)
        options.setdefault("spatial_dims", dataset.spatial_dims)
        self.amp_dtype = _autocast_dtype(config.precision, self.device)
        self.memory_format = _memory_format(config.memory_format, self.device,
                                            dataset.spatial_dims, self.amp_dtype)
        net = build_model(config.model, n_classes=dataset.n_classes, **options)
        self.model = PadToMultiple(net).to(self.device, memory_format=self.memory_format)
        self.patch_size = self._patch_size(config, dataset.shape)
        self.patched = self.patch_size != tuple(dataset.shape)
        self._check_size(self.patch_size)
        self.images = _Normalised(dataset.images)
        masks = np.asarray(dataset.masks, dtype=np.uint8)
        shared = masks is dataset.masks
        if shared and not masks.flags.writeable:
            masks, shared = masks.copy(), False
        self._own_targets = not shared  # else copied on the first replace_masks
        self.train_targets = torch.from_numpy(masks)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        self.dice_loss = DiceLoss(include_background=False, to_onehot_y=True, softmax=True,
                                  reduction="none")
        self._masked_dice = DiceLoss(include_background=False, reduction="none")
        self.class_weights = (class_balance_weights((masks[i] for i in self.train_idx.tolist()),
                                                    dataset.n_classes)
                              if config.loss == "wce" else None)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.history: list[dict[str, float]] = []
        self.best_score = -1.0
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self.track_input_grad = False
        self.interrupted = False
        self.epoch = 0
        self.step = 0
        self.skipped_steps = 0  # optimiser steps skipped for non-finite gradients
        self._weights = self._sampling_weights() if config.balanced else None
        n_train = len(self.train_idx)
        self.steps_per_epoch = config.steps_per_epoch or max(1, -(-n_train // config.batch_size))
        #: Whether the forward pass runs in reduced precision (``config.precision``).
        self.amp = self.amp_dtype is not None

    # ----------------------------------------------------------------- helpers
    def _patch_size(self, config: TrainConfig, shape: tuple[int, ...]) -> tuple[int, ...]:
        if config.patch_size is None:
            if len(shape) == 2:
                return tuple(shape)
            divisor = 32 if config.model == "fcn32" else 16
            return tuple(choose_patch_size(shape, budget=PATCH_BUDGET[self.device.type],
                                           divisor=divisor))
        ps = tuple(config.patch_size)
        if len(ps) != len(shape) or any(p > s for p, s in zip(ps, shape, strict=True)):
            raise ConfigError(f"patch_size: {list(ps)} does not fit samples of "
                              f"{'x'.join(map(str, shape))} voxels (one size per axis, each at "
                              f"most the sample's)")
        return ps

    #: Padding multiples tried, smallest first, for a network that states no input sizes
    #: (``monai:*``) and cannot process the training size as it is.
    _PROBE_MULTIPLES = (2, 4, 8, 16, 32, 64)

    def _check_size(self, shape: tuple[int, ...]) -> None:
        """Make sure the network maps inputs of ``shape`` (padded as :attr:`model` pads them)
        to logits of ``shape``. A network that states no input sizes (:func:`input_geometry`)
        and fails is padded to the smallest power-of-two multiple that works.

        Raises
        ------
        ConfigError
            No padding makes the network process ``shape``.
        """
        error, tried = self._size_error(shape), ""
        if error is not None and input_geometry(self.model.net) == (1, 1):
            for multiple in self._PROBE_MULTIPLES:
                self.model.multiple = multiple
                if self._size_error(shape) is None:
                    log.info("model: %s: padding inputs to multiples of %d voxels",
                             self.config.model, multiple)
                    return
            self.model.multiple = 1
            tried = (f"; padded to multiples of {self._PROBE_MULTIPLES[0]} to "
                     f"{self._PROBE_MULTIPLES[-1]} neither")
        if error is not None:
            what = "x".join(map(str, shape))
            option = "--patch-size" if len(shape) == 3 else "--slice-size (volumes) or --patch-size"
            raise ConfigError(f"model: {self.config.model} cannot process {what} inputs "
                              f"({error}{tried}); give {option} a size it can process or "
                              f"choose another --model")

    def _size_error(self, shape: tuple[int, ...]) -> str | None:
        """Why the model cannot map a zero input of ``shape`` to logits of ``shape``, or None."""
        padded = padded_shape(shape, multiple=self.model.multiple, min_size=self.model.min_size)
        via = "" if padded == tuple(shape) else f"padded to {'x'.join(map(str, padded))}: "
        try:
            with torch.no_grad():
                self.model.eval()
                out = self.model(self._to_device(torch.zeros(1, 1, *shape)))
        except RuntimeError as exc:
            return via + str(exc).splitlines()[0]
        if tuple(out.shape[2:]) != tuple(shape):
            return f"{via}output {'x'.join(map(str, out.shape[2:]))}"
        return None

    def _sampling_weights(self) -> torch.Tensor:
        """Class-balanced sampling: weight = sum over classes present of 1/(#samples with it)."""
        masks = self.dataset.masks[self.train_idx.numpy()]
        axes = tuple(range(1, masks.ndim))
        present = np.stack([(masks == c).any(axis=axes) for c in range(self.dataset.n_classes)],
                           axis=1)
        inv = 1.0 / np.maximum(present.sum(axis=0), 1)
        return torch.as_tensor((present * inv).sum(axis=1), dtype=torch.float64)

    def _batches(self) -> list[torch.Tensor]:
        n, bs = len(self.train_idx), self.config.batch_size
        total = self.steps_per_epoch * bs
        if self._weights is not None:
            pos = torch.multinomial(self._weights, total, replacement=True,
                                    generator=self.generator)
        else:
            reps = -(-total // n)
            pos = torch.cat([torch.randperm(n, generator=self.generator) for _ in range(reps)])
        return [self.train_idx[pos[i * bs:(i + 1) * bs]] for i in range(self.steps_per_epoch)]

    def _augment(self, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Intensity scaling and, for whole samples, an in-plane roll (a random patch is
        already a random translation)."""
        b, h = x.shape[0], x.shape[-2]
        g = self.generator
        scale = 1.0 + 0.2 * (torch.rand(b, *([1] * (x.ndim - 1)), generator=g) - 0.5)
        x = x * scale
        if self.patched:
            return x, y, (0, 0)
        m = max(1, h // 16)
        dy, dx = (int(v) for v in torch.randint(-m, m + 1, (2,), generator=g))
        return (torch.roll(x, (dy, dx), dims=(-2, -1)), torch.roll(y, (dy, dx), dims=(-2, -1)),
                (dy, dx))

    def _crop(self, x: torch.Tensor, y: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random patches of :attr:`patch_size` from a batch of whole samples, a third of them
        centred on a foreground voxel of the training mask (nnU-Net's oversampling; uniform
        when the mask has none). Returns the patches and their origins ``(B, d)``."""
        g = self.generator
        shape = torch.as_tensor(x.shape[2:])
        patch = torch.as_tensor(self.patch_size)
        span = shape - patch
        xs, ys, origins = [], [], []
        for b in range(len(x)):
            origin = (torch.rand(len(patch), generator=g) * (span + 1)).long()
            if float(torch.rand(1, generator=g)) < 1 / 3:
                fg = torch.nonzero((y[b] > 0) & (y[b] != IGNORE_INDEX))
                if len(fg):
                    centre = fg[int(torch.randint(len(fg), (1,), generator=g))]
                    origin = torch.minimum(torch.clamp(centre - patch // 2, min=0), span)
            sl = tuple(slice(int(o), int(o) + int(p)) for o, p in zip(origin, patch, strict=True))
            xs.append(x[(b, slice(None), *sl)])
            ys.append(y[(b, *sl)])
            origins.append(origin)
        return torch.stack(xs), torch.stack(ys), torch.stack(origins)

    def per_sample_loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-sample loss, shape (B,): mean pixel cross-entropy (+ mean foreground Dice loss).

        Pixels labelled :data:`IGNORE_INDEX` are left out of both terms (a sample with no
        other pixel has loss 0); batches without them take the plain path.
        """
        ignored = y == IGNORE_INDEX
        if bool(ignored.any()):
            return self._masked_loss(logits, y, ~ignored)
        dims = tuple(range(1, y.ndim))
        if self.class_weights is not None:  # wce: sum of weighted losses / sum of weights
            w = self.class_weights.to(logits.device)
            ce = F.cross_entropy(logits.float(), y, weight=w, reduction="none").sum(dim=dims)
            return ce / w[y].sum(dim=dims).clamp_min(1e-12)
        ce = F.cross_entropy(logits.float(), y, reduction="none").mean(dim=dims)
        if self.config.loss == "ce":
            return ce
        dl = self.dice_loss(logits.float(), y[:, None]).reshape(len(y), -1).mean(dim=1)
        return ce + dl

    def _masked_loss(self, logits: torch.Tensor, y: torch.Tensor, valid: torch.Tensor
                     ) -> torch.Tensor:
        """The loss over the ``valid`` pixels only: cross-entropy averaged over them, and the
        Dice loss of the softmax and one-hot maps with every other pixel zeroed in both."""
        logits = logits.float()
        v = valid.to(logits.dtype)
        dims = tuple(range(1, y.ndim))
        n_valid = v.sum(dim=dims)
        if self.class_weights is not None:
            w = self.class_weights.to(logits.device)
            ce = F.cross_entropy(logits, y, weight=w, ignore_index=IGNORE_INDEX, reduction="none")
            return ce.sum(dim=dims) / (w[torch.where(valid, y, 0)] * v).sum(dim=dims).clamp_min(1e-12)
        ce = F.cross_entropy(logits, y, ignore_index=IGNORE_INDEX, reduction="none")
        ce = ce.sum(dim=dims) / n_valid.clamp_min(1)
        if self.config.loss == "ce":
            return ce
        onehot = torch.movedim(F.one_hot(torch.where(valid, y, 0), logits.shape[1]), -1, 1)
        dl = self._masked_dice(torch.softmax(logits, dim=1) * v[:, None], onehot * v[:, None])
        return ce + dl.reshape(len(y), -1).mean(dim=1)

    def _emit(self, hook: str, *args: Any) -> None:
        for cb in self.callbacks:
            getattr(cb, hook)(self, *args)

    @property
    def total_steps(self) -> int:
        """Optimisation steps in the whole run."""
        return self.config.epochs * self.steps_per_epoch

    @property
    def sample_ids(self) -> tuple[str, ...]:
        """Sample ids by dataset index."""
        return self.dataset.sample_ids

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        """A batch of images on the training device in the network's memory order."""
        return x.to(self.device, memory_format=self.memory_format)

    @property
    def settings(self) -> dict[str, str]:
        """The precision and memory order this trainer resolved ``auto`` to (for records)."""
        dtype = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.amp_dtype]
        fmt = "contiguous" if self.memory_format == torch.contiguous_format else "channels_last"
        return {"precision": dtype, "memory_format": fmt}

    def autocast(self) -> torch.autocast:
        """The precision context of training and prediction forward passes
        (``config.precision``). VOG's input gradients stay float32."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp)

    # ------------------------------------------------------------------ API
    def replace_masks(self, indices: Sequence[int] | np.ndarray, masks: np.ndarray) -> None:
        """Replace the training masks of the samples at ``indices`` (refurbishment)."""
        idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
        if not self._own_targets:  # copy on first write: the dataset's masks stay as given
            self.train_targets = self.train_targets.clone()
            self._own_targets = True
        self.train_targets[idx] = torch.as_tensor(np.asarray(masks, dtype=np.uint8))

    @torch.no_grad()
    def predict_logits(self, indices: Sequence[int] | np.ndarray | None = None, *,
                       images: np.ndarray | None = None, batch_size: int = 32) -> torch.Tensor:
        """Logits (N, C, *S) for dataset samples at ``indices`` or for raw ``images``
        (normalised a batch at a time). When training on patches, each sample is predicted
        with MONAI's sliding-window inference (patches of :attr:`patch_size`, half
        overlapping, Gaussian-weighted as nnU-Net does)."""
        src = self.images if images is None else _Normalised(np.asarray(images, dtype=np.float32))
        idx = np.arange(len(src)) if images is not None else np.asarray(indices, dtype=np.int64)
        self.model.eval()
        batch_size = max(1, min(batch_size, 2**22 // int(np.prod(self.dataset.shape))))
        outs = []
        for i in range(0, len(idx), batch_size):
            xb = self._to_device(src[idx[i:i + batch_size]])
            with self.autocast():
                if self.patched:
                    from monai.inferers import sliding_window_inference

                    out = sliding_window_inference(xb, self.patch_size, 4, self.model,
                                                   overlap=0.5, mode="gaussian")
                else:
                    out = self.model(xb)
            outs.append(out.float().cpu())
        return torch.cat(outs) if outs else torch.empty(0)

    def predict(self, indices: Sequence[int] | np.ndarray | None = None, *,
                images: np.ndarray | None = None) -> np.ndarray:
        """Predicted label masks (N, *S) uint8 (a few hundred samples' logits at a time)."""
        n = len(images) if images is not None else len(np.asarray(indices))
        step = max(1, min(256, 2**24 // int(np.prod(self.dataset.shape))))
        parts = [self.predict_logits(None if images is not None else np.asarray(indices)[i:i + step],
                                     images=None if images is None else images[i:i + step]
                                     ).argmax(1).numpy().astype(np.uint8)
                 for i in range(0, n, step)]
        return np.concatenate(parts) if parts else np.zeros((0, *self.dataset.shape), np.uint8)

    def set_trusted(self, indices: Sequence[int] | np.ndarray, source: str) -> None:
        """Name the samples whose masks are right (``source`` says where the list came from)."""
        idx = np.asarray(indices, dtype=np.int64)
        if len(idx) == 0:
            raise ConfigError("trusted: no sample named as trusted")
        self.trusted_idx, self.trusted_source = idx, source

    def trusted_masks(self, indices: np.ndarray) -> np.ndarray:
        """The right masks of trusted samples: validation (and test) masks as the dataset reads
        them (the clean ones when known), a trusted training sample's given mask."""
        idx = np.asarray(indices, dtype=np.int64)
        is_train = self.dataset.split[idx] == "train"
        is_train = is_train.reshape(-1, *([1] * len(self.dataset.shape)))
        return np.where(is_train, self.dataset.masks[idx], self.dataset.truth[idx])

    def _finite_gradients(self) -> bool:
        """Whether every gradient is finite and their joint norm representable in float32.

        A step with an infinite or NaN gradient (or one so large that its square overflows)
        would put infinities into Adam's moments and NaN into every weight after it; it is
        skipped instead, as PyTorch's ``GradScaler`` does for float16 (seen with ``wce`` on
        the 3-D U-Net in bfloat16 at lr 5e-3: about 2.5% of the steps)."""
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        if not grads:
            return True
        return bool(torch.isfinite(torch.nn.utils.get_total_norm(grads)))

    def validate(self) -> float:
        """Mean foreground Dice on the validation split against the truth."""
        pred = self.predict(self.val_idx)
        return float(np.mean(dice(pred, self.dataset.truth[self.val_idx], self.dataset.n_classes)))

    def fit(self) -> Trainer:
        """Train for ``config.epochs`` epochs; Ctrl-C stops early and keeps the best weights."""
        self._emit("on_train_start")
        scaler = torch.amp.GradScaler(enabled=self.amp_dtype == torch.float16)
        grab: _InputGradient | None = None  # made when a detector first asks for input gradients
        try:
            for epoch in range(self.epoch, self.config.epochs):
                self.epoch = epoch
                self._emit("on_epoch_start", epoch)
                self.model.train()
                t0, seen, total = time.perf_counter(), 0, 0.0
                for idx in self._batches():
                    shift, origin = (0, 0), None
                    if self.patched:  # crop first, then z-score the patches only
                        x, y, origin = self._crop(self.images.raw(idx), self.train_targets[idx])
                        x, y = self.images.normalise(x, idx), y.long()
                    else:
                        x, y = self.images[idx], self.train_targets[idx].long()
                    if self.config.augment:
                        x, y, shift = self._augment(x, y)
                    x = self._to_device(x)
                    y = y.to(self.device)
                    tracked = self.track_input_grad
                    if tracked:
                        if grab is None:
                            grab = _InputGradient(self.model, tuple(x.shape[1:]), self.device)
                        grab.prepare(x)
                    with self.autocast():
                        logits = self.model(x)
                    losses = self.per_sample_loss(logits, y)
                    self.optimizer.zero_grad(set_to_none=True)
                    scaler.scale(losses.mean()).backward()
                    if tracked and grab is not None:
                        grab.finish(scaler.get_scale() if scaler.is_enabled() else 1.0)
                    if scaler.is_enabled() or self._finite_gradients():
                        scaler.step(self.optimizer)  # GradScaler skips non-finite fp16 steps itself
                    else:
                        self.skipped_steps += 1
                        log.warning("step %d: non-finite gradients, optimiser step skipped (%d so "
                                    "far); lower --lr if this repeats", self.step + 1,
                                    self.skipped_steps)
                    scaler.update()
                    self.step += 1
                    seen += len(idx)
                    total += float(losses.detach().sum())
                    self._emit("on_batch_end", BatchResult(idx, losses.detach().cpu(),
                                                           logits.detach(), x, epoch, self.step,
                                                           shift, origin))
                train_s = time.perf_counter() - t0
                score = self.validate()
                logs = {"epoch": epoch + 1, "train_loss": total / max(seen, 1),
                        "val_dice": score, "images_per_s": seen / max(train_s, 1e-9),
                        "seconds": time.perf_counter() - t0,
                        "skipped_steps": float(self.skipped_steps)}
                self.history.append(logs)
                if score > self.best_score:
                    self.best_score, self.best_epoch = score, epoch + 1
                    self.best_state = copy.deepcopy(self.model.state_dict())
                    self._emit("on_checkpoint", epoch, score)
                self._emit("on_epoch_end", epoch, logs)
        except KeyboardInterrupt:
            self.interrupted = True
            log.warning("interrupted: keeping the best weights so far (epoch %s)", self.best_epoch)
        finally:
            if grab is not None:
                grab.close()
            if self.best_state is not None:
                self.model.load_state_dict(self.best_state)
            self._emit("on_train_end")
        return self

    def save(self, path: str | Path) -> Path:
        """Save weights and config (no pickled objects: loads with ``weights_only=True``)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        torch.save({"state_dict": self.model.state_dict(), "config": self.config.to_dict(),
                    "n_classes": self.dataset.n_classes,
                    "class_names": list(self.dataset.class_names),
                    "best_epoch": self.best_epoch, "best_val_dice": self.best_score,
                    "spatial_dims": self.dataset.spatial_dims,
                    "patch_size": list(self.patch_size),
                    "input_padding": {"multiple": self.model.multiple,
                                      "min_size": self.model.min_size}}, tmp)
        os.replace(tmp, path)
        return path


def load_checkpoint(path: str | Path, *, device: str = "cpu") -> tuple[PadToMultiple, dict]:
    """Load a checkpoint written by :meth:`Trainer.save` and rebuild its network.

    Loaded with ``weights_only=True`` (no pickled objects are run).

    Parameters
    ----------
    path : str or Path
        The checkpoint file.
    device : str, default 'cpu'
        Where to put the weights (``torch.load``'s ``map_location``, e.g. ``cpu``, ``cuda``).

    Returns
    -------
    model : PadToMultiple
        The network in eval mode with the saved weights, padding its inputs as the trainer's
        did (``model.net`` is the network itself).
    checkpoint : dict
        Everything saved: ``state_dict``, ``config`` (a :meth:`TrainConfig.to_dict`),
        ``n_classes``, ``class_names``, ``best_epoch``, ``best_val_dice``, ``spatial_dims``,
        ``patch_size`` and ``input_padding``.

    Raises
    ------
    DataError
        The file cannot be read or is not a checkpoint ``torch.load`` can load.
    ConfigError
        The saved config has an unknown field or an invalid value, or names a network or
        option this version does not know.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from noisyseg.data import Samples
    >>> masks = np.zeros((3, 16, 16), np.uint8); masks[:, 4:12, 4:12] = 1
    >>> ds = Samples(images=masks.astype(np.float32), masks=masks,
    ...              class_names=("background", "lv"), sample_ids=("a", "b", "c"),
    ...              split=np.array(["train", "train", "val"]))
    >>> cfg = TrainConfig(epochs=1, batch_size=2, device="cpu", model_options={"width": 4})
    >>> trainer = Trainer(cfg, ds).fit()
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     model, ckpt = load_checkpoint(trainer.save(Path(tmp) / "model.pt"))
    >>> ckpt["n_classes"], ckpt["class_names"], ckpt["best_epoch"], model.training
    (2, ['background', 'lv'], 1, False)
    >>> with torch.no_grad():
    ...     tuple(model(torch.zeros(1, 1, 16, 16)).shape)
    (1, 2, 16, 16)
    """
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise DataError(f"{path}: cannot load checkpoint ({exc})") from exc
    cfg = TrainConfig.from_dict(ckpt["config"])
    options = {"spatial_dims": int(ckpt.get("spatial_dims", 2))} | dict(cfg.model_options)
    padding = dict(ckpt.get("input_padding", {}))  # absent before inputs were padded
    model = PadToMultiple(build_model(cfg.model, n_classes=ckpt["n_classes"], **options),
                          multiple=padding.get("multiple"), min_size=padding.get("min_size"))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt
