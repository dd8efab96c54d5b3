"""Process-level settings that make the CPU paths fast; each is measured, each is safe to call twice.

``tune_allocator``: glibc returns every freed block above its mmap threshold (128 KiB at first, adapting
up to 32 MiB) to the kernel, and the next allocation of the same size faults its pages in again. A training
step at 256² allocates and frees activations of several MiB many times, so on this 2-core CPU a third of the
loss study's time went to page faults (``sys`` time). Raising the mmap threshold to its maximum and the
trim threshold to 256 MiB keeps those blocks in the heap: the lecture-style loss-study loop went from 0.145
to 0.086 s a step here. Elsewhere than glibc (macOS, Windows, musl) it does nothing.

``native_bf16``: whether bf16 autocast runs natively. On a CPU without AVX512-BF16 or AMX (plain AVX2), PyTorch
emulates bf16 and a UNet training step took 20 s under ``--amp`` against 1.1 s in fp32; ``train --amp`` and
the bench ask this first and fall back to fp32 with a notice. ``RECON_CPU_BF16=0`` (or 1) overrides the probe.

``log_to_stderr``: the project's own log lines (``recon_demo.*`` loggers: a training that starts, ends or is
abandoned by its client) on stderr, one line each, without turning on the INFO chatter of other libraries.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
from pathlib import Path

_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 * 1024 * 1024  # glibc's ceiling on 64-bit systems
_TRIM_THRESHOLD = 256 * 1024 * 1024
_tuned: bool | None = None


def tune_allocator() -> bool:
    """Keep large freed blocks in the heap (glibc only); returns whether the setting took effect."""
    global _tuned
    if _tuned is None:
        _tuned = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                mallopt = libc.mallopt
            except (OSError, AttributeError):  # not glibc
                return False
            _tuned = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    return _tuned


def log_to_stderr(level: int = logging.INFO) -> None:
    """Send ``recon_demo.*`` log records at ``level`` and above to stderr (once, however often it is called)."""
    logger = logging.getLogger("recon_demo")
    logger.setLevel(level)
    if not any(getattr(h, "_recon_demo", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
        handler._recon_demo = True
        logger.addHandler(handler)


def native_bf16(device_type: str = "cpu") -> tuple[bool, str]:
    """(whether bf16 autocast is native on this device, why): CUDA asks the driver, a CPU its instruction flags."""
    if device_type == "cuda":
        import torch

        try:  # without emulation: a pre-Ampere GPU (T4, V100) would emulate bf16, slower than float32
            ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # a torch without the argument reports native support only
            ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return ok, "the GPU supports bf16" if ok else "this GPU has no native bf16"
    forced = os.environ.get("RECON_CPU_BF16")
    if forced in ("0", "1"):
        return forced == "1", f"RECON_CPU_BF16={forced}"
    if device_type != "cpu":
        return False, f"bf16 autocast is not supported on {device_type}"
    flags = _cpu_flags()
    found = sorted(flags & {"avx512_bf16", "amx_bf16", "bf16"})  # x86 (AVX512-BF16, AMX) and Arm (FEAT_BF16)
    if found:
        return True, f"the CPU has {', '.join(found)}"
    if sys.platform == "darwin":
        return False, "bf16 on this Mac's CPU is not probed: fp32"
    return False, "this CPU has no bf16 instructions (no AVX512-BF16 or AMX): PyTorch would emulate bf16, many times slower"


def _cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux; x86 'flags', Arm 'Features'), empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()
