"""What the benchmarks write about the machine they ran on."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), with PyTorch's vector capability
    (e.g. ``AVX512``), which decides its fast paths; the architecture elsewhere."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        return f"{name} ({torch.backends.cpu.get_cpu_capability()})"
    except ImportError:
        return name
