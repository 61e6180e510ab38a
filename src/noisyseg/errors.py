"""Exception types. The CLI turns every :class:`NoisysegError` into one line and exit status 2."""

from __future__ import annotations


class NoisysegError(ValueError):
    """Base class of the errors a user can cause (bad file, bad option)."""


class DataError(NoisysegError):
    """A data file or folder is missing, unreadable or inconsistent."""


class ConfigError(NoisysegError):
    """An option or configuration value is invalid."""


class WriteError(NoisysegError):
    """An output cannot be written: disk full, read-only file system, permission denied."""


class CalibrationError(ConfigError):
    """A target agreement cannot be reached by an error model."""
