"""noisyseg: simulate, detect and refurbish label errors in medical image segmentation.

Pipeline stages, each a subpackage that imports only from the stages before it::

    data -> corrupt -> models / train -> detect -> refurbish -> run -> study -> report -> cli

``evaluate`` holds pure metrics (the project-wide Dice, MONAI test metrics), used by every stage.

Conventions used everywhere: images ``(N, H, W)`` float32, masks ``(N, H, W)`` uint8
with label 0 the background, logits ``(N, C, H, W)``.
"""

from noisyseg.errors import CalibrationError, ConfigError, DataError, NoisysegError

__version__ = "0.1.0"

__all__ = ["CalibrationError", "ConfigError", "DataError", "NoisysegError", "__version__"]
