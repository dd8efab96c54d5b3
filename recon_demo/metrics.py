"""Image-quality metrics as the lecture computes them, as small objects the UI can rank by.

MSE, PSNR and SSIM are scikit-image's with ``data_range=1`` on float images in [0, 1]: MSE and PSNR are its two
formulas (to the bit, ``tests/test_metrics.py``), SSIM is ``skimage.metrics.structural_similarity`` itself, imported
on first use (its modules import ``scipy.stats`` and ``scipy.ndimage``: not at the app's start; ``warm_up`` imports
them once the app is up). LPIPS is ``lpips.LPIPS(net="alex")`` v0.1, built by ``pretrained.build_lpips_alex``
(the package's network would import torchvision, and with it ``torch._dynamo``: 2.5 s of a first request here;
``tests/test_metrics.py`` checks ours against ``lpips.LPIPS``), on the grey image repeated to three channels and
mapped to [-1, 1];
data consistency ``||K x_rec − y_delta|| / ||y_delta||`` asks how well a reconstruction explains the
measurement, which end-to-end networks do not enforce. Each ``Metric`` knows whether lower is better.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from recon_demo.cache import BoundedCache
from recon_demo.physics.blur import Blur
from recon_demo.pretrained import PretrainedUnavailable, build_lpips_alex


def _as_image(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """A 2-D float32 array from a tensor (1, 1, H, W), (1, H, W) or (H, W), or an array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    x = np.asarray(x, dtype=np.float32)
    x = x.reshape(x.shape[-2:]) if x.ndim > 2 else x
    if x.ndim != 2:
        raise ValueError(f"expected a grey image, got shape {x.shape}")
    return x


def _as_batch(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
    t = t.detach().float()
    while t.ndim < 4:
        t = t.unsqueeze(0)
    return t  # (N, 1, H, W)


def _mean_squared_error(a: np.ndarray, b: np.ndarray) -> np.float64:
    """scikit-image's ``mean_squared_error`` on float32 images: the difference in float32, the mean in float64."""
    return np.mean((a - b) ** 2, dtype=np.float64)


def mse(x_rec, x_true) -> float:
    """Mean squared error."""
    return float(_mean_squared_error(_as_image(x_true), _as_image(x_rec)))


def psnr(x_rec, x_true) -> float:
    """Peak signal-to-noise ratio in dB, peak 1 (infinite for identical images): scikit-image's, ``data_range=1``."""
    a, b = _as_image(x_true), _as_image(x_rec)
    if np.array_equal(a, b):
        return float("inf")
    return float(10 * np.log10(1.0 / _mean_squared_error(a, b)))


SSIM_WINDOW = 7  # scikit-image's default uniform window


def ssim(x_rec, x_true) -> float:
    """Structural similarity: scikit-image's ``structural_similarity(x_true, x_rec, data_range=1)`` (a 7×7 uniform
    window, sample covariance), as the lecture computes it; ``skimage.metrics`` is imported on first use (or by
    ``warm_up`` after the app starts), not at the app's start."""
    from skimage.metrics import structural_similarity

    a, b = _as_image(x_true), _as_image(x_rec)
    if min(a.shape) < SSIM_WINDOW:  # scikit-image's own message speaks of win_size and channel_axis
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}×{SSIM_WINDOW}, got {a.shape}")
    return float(structural_similarity(a, b, data_range=1.0))


class _LPIPSModel:
    """The LPIPS network, built once on first use; a failure is remembered with its reason."""

    def __init__(self):
        self._lock = threading.Lock()
        self._model: torch.nn.Module | None = None
        self._error: str | None = None

    def get(self) -> torch.nn.Module:
        with self._lock:
            if self._model is None and self._error is None:
                try:
                    # channels-last, as the engine's networks: 4 images at 256² in 63 instead of 74 ms (2-core AVX2)
                    self._model = build_lpips_alex().to(memory_format=torch.channels_last)
                except (PretrainedUnavailable, OSError, RuntimeError, ValueError) as err:
                    self._error = str(err)
            if self._model is None:
                raise PretrainedUnavailable(self._error)
            return self._model


_LPIPS = _LPIPSModel()


def lpips_status() -> tuple[bool, str]:
    """Whether LPIPS can be computed here, and a sentence saying why (or where its weights came from)."""
    try:
        _LPIPS.get()
    except PretrainedUnavailable as err:
        return False, f"LPIPS unavailable: {err}"
    return True, "LPIPS (AlexNet, v0.1) ready"


def _lpips_input(x) -> torch.Tensor:
    x = _as_batch(_as_image(x)).repeat(1, 3, 1, 1) * 2 - 1  # grey → 3 channels, [0, 1] → [-1, 1]
    return x.contiguous(memory_format=torch.channels_last)


def lpips_distance(x_rec, x_true) -> float:
    """LPIPS distance; raises ``PretrainedUnavailable`` with the reason when the weights are missing."""
    model = _LPIPS.get()
    with torch.inference_mode():
        return float(model(_lpips_input(x_rec), _lpips_input(x_true)).item())


def lpips_distances(images: list, x_true, bf16: bool = False) -> list[float]:
    """``lpips_distance`` of each image to one reference, in one batch, the reference's features computed once
    (``pretrained.LPIPSAlex``) and kept for the next request on that image: a 3-method reconstruction took 4 LPIPS passes of
    2 images each, now one of 4. With ``bf16`` (the app's engine where bf16 is native) AlexNet's convolutions run in
    bf16 (35 → 20 ms for four 256² images on a 2-core AVX512-BF16 CPU; the distances move by at most 0.002, measured in
    ``tests/test_metrics.py``); ``evaluate`` and the lecture's figures stay float32.
    Raises ``PretrainedUnavailable`` like ``lpips_distance``."""
    if not images:
        return []
    model = _LPIPS.get()
    precision = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.inference_mode(), precision:
        reference = _reference_features(model, _as_image(x_true), bf16)
        feats = model.features(torch.cat([_lpips_input(x) for x in images]))
        total = model.distance(feats, reference).flatten()
    return [float(v) for v in total]


_REFERENCES: BoundedCache[bytes, list[torch.Tensor]] = BoundedCache(8)  # a ground truth's digest → its LPIPS features


def _reference_features(model, x_true: np.ndarray, bf16: bool = False) -> list[torch.Tensor]:
    """LPIPS features of a ground truth, kept for the last few: every request on an image compares against it."""
    key = hashlib.sha1(x_true.tobytes()).digest() + str(x_true.shape).encode() + (b"bf16" if bf16 else b"")
    return _REFERENCES.get_or_compute(key, lambda: model.features(_lpips_input(x_true)))


def warm_up() -> None:
    """Import scikit-image's metrics and build the LPIPS network now (the app calls it in the background once it
    is up), so that the first request does not wait for them; LPIPS being unavailable is not an error here."""
    from skimage.metrics import structural_similarity  # noqa: F401

    try:
        _LPIPS.get()
    except PretrainedUnavailable:
        pass


def data_consistency(x_rec, y_delta, operator: Blur) -> float:
    """``||K x_rec − y_delta|| / ||y_delta||``: how far the reconstruction is from explaining the data. A blur runs
    here as its solvers run it (``Blur.for_solver``: scipy's FFT, equal to the convolution to 1e-6): on a 2-core AVX2
    CPU, torch's ``conv2d`` of one 256² image with a 9×9 kernel took 34 ms, the FFT 0.9 ms, and a request of three
    methods computes this four times."""
    x = _as_batch(x_rec)
    y = _as_batch(y_delta).to(x.device)
    K = operator.for_solver() if hasattr(operator, "for_solver") else operator
    with torch.inference_mode():
        return float((K.forward(x) - y).norm() / y.norm().clamp_min(1e-12))


@dataclass(frozen=True)
class Metric:
    """A named metric; ``fn(x_rec, x_true)`` or, for data consistency, ``fn(x_rec, y_delta, operator)``."""

    name: str
    label: str
    higher_is_better: bool
    fn: Callable[..., float]
    fmt: str  # how the lecture prints it
    unit: str = ""
    reference: str = "x_true"  # what the metric compares against: "x_true" or "y_delta"
    column: str = ""  # the tables' heading (default: the label, with its unit in brackets)

    @property
    def heading(self) -> str:
        return self.column or (f"{self.label} ({self.unit.strip()})" if self.unit else self.label)

    def format(self, value: float | None) -> str:
        return "n/a" if value is None else f"{value:{self.fmt}}{self.unit}"


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("mse", "MSE", False, mse, ".6f"),
        Metric("psnr", "PSNR", True, psnr, ".3f", " dB"),
        Metric("ssim", "SSIM", True, ssim, ".4f"),
        Metric("lpips", "LPIPS", False, lpips_distance, ".4f"),
        Metric("dc", "Data consistency", False, data_consistency, ".4f", reference="y_delta", column="data consistency"),
    )
}


def compute_metrics(
    x_rec,
    x_true=None,
    *,
    y_delta=None,
    operator: Blur | None = None,
    with_lpips: bool = False,
) -> dict[str, float | None]:
    """Every metric that the given references allow. LPIPS is ``None`` when unavailable or not asked."""
    out: dict[str, float | None] = {}
    if x_true is not None:
        for name in ("mse", "psnr", "ssim"):
            out[name] = METRICS[name].fn(x_rec, x_true)
        out["lpips"] = None
        if with_lpips:
            try:
                out["lpips"] = lpips_distance(x_rec, x_true)
            except PretrainedUnavailable:
                pass
    if y_delta is not None and operator is not None:
        out["dc"] = data_consistency(x_rec, y_delta, operator)
    return out
