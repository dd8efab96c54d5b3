"""Training losses, named in a registry, and weighted combinations parsed from a spec.

``mse`` and ``l1`` are torch's; ``ssim`` is ``1 − SSIM`` exactly as scikit-image computes the metric (7×7
window), made differentiable, and ``ssim_lecture`` the lecture's loss-study variant (statistics from 3×3
average pooling, c1 = 0.01², c2 = 0.03², a 1e-8 guard); ``fourier`` is the lecture's mean absolute
difference of orthonormal 2-D FFTs and ``fourier_hp(cutoff)`` the same above a radial cut-off (a fraction
of the Nyquist frequency), which weighs the fine detail blur destroys; ``psnr`` is each image's shortfall
from 50 dB PSNR, averaged, so that an image under a strong blur does not outweigh one under a mild blur;
``perceptual`` compares VGG16 ``features[:16]`` and ``lpips`` is LPIPS used as a loss. The last two need
ImageNet weights, found offline (see ``pretrained``); without them they are reported unavailable with the
reason.

``parse_loss("mse + 0.2*ssim + 0.1*fourier")`` builds a weighted sum; a malformed spec raises
``ValueError`` naming the bad term.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from recon_demo.physics.noise import add_relative_noise
from recon_demo.pretrained import PretrainedUnavailable, build_lpips_alex, build_vgg16_features


def ssim_loss(x_rec: torch.Tensor, x_true: torch.Tensor) -> torch.Tensor:
    """``1 − SSIM`` as scikit-image computes it (7×7 uniform window, sample covariance, ``data_range=1``).

    scikit-image filters with reflection and then drops a 3-pixel border before averaging; a 7×7 pooling
    without padding gives exactly the kept pixels, so this is the metric itself, made differentiable.
    """
    c1, c2 = 0.01**2, 0.03**2
    win = 7
    cov_norm = win * win / (win * win - 1)  # scikit-image's unbiased (sample) covariance
    pool = lambda t: F.avg_pool2d(t, win, stride=1)  # noqa: E731  (N, 1, H − 6, W − 6)
    mu_x, mu_y = pool(x_rec), pool(x_true)
    var_x = cov_norm * (pool(x_rec * x_rec) - mu_x**2)
    var_y = cov_norm * (pool(x_true * x_true) - mu_y**2)
    cov = cov_norm * (pool(x_rec * x_true) - mu_x * mu_y)
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return 1 - ssim_map.mean()


def ssim_lecture_loss(x_rec: torch.Tensor, x_true: torch.Tensor) -> torch.Tensor:
    """The lecture's loss-study SSIM: ``1 − mean SSIM map`` with 3×3 average-pooled statistics.

    Zero-padded 3×3 pooling (stride 1), population variances, c1 = 0.01², c2 = 0.03² and a 1e-8 guard in the
    denominator, as the lecture writes it. It differs from scikit-image's SSIM by a few hundredths.
    """
    c1, c2 = 0.01**2, 0.03**2
    pool = lambda t: F.avg_pool2d(t, 3, stride=1, padding=1)  # noqa: E731
    mu_x, mu_y = pool(x_rec), pool(x_true)
    var_x = pool(x_rec * x_rec) - mu_x**2
    var_y = pool(x_true * x_true) - mu_y**2
    cov = pool(x_rec * x_true) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2) + 1e-8)
    return 1 - ssim_map.mean()


def _check_cutoff(cutoff: float) -> float:
    cutoff = float(cutoff)
    if not 0 <= cutoff < 1:
        raise ValueError(f"the Fourier cut-off is a fraction of the Nyquist frequency in [0, 1), got {cutoff:g}")
    return cutoff


def fourier_loss(x_rec: torch.Tensor, x_true: torch.Tensor, cutoff: float = 0.0) -> torch.Tensor:
    """Mean ``|F(x_rec) − F(x_true)|`` (orthonormal FFT) over frequencies above ``cutoff`` × Nyquist."""
    cutoff = _check_cutoff(cutoff)
    diff = (torch.fft.fft2(x_rec, norm="ortho") - torch.fft.fft2(x_true, norm="ortho")).abs()  # (N, 1, H, W)
    if cutoff == 0:
        return diff.mean()
    h, w = x_rec.shape[-2:]
    fy = torch.fft.fftfreq(h, device=x_rec.device).abs()[:, None] * 2  # in units of Nyquist
    fx = torch.fft.fftfreq(w, device=x_rec.device).abs()[None, :] * 2
    mask = (fy**2 + fx**2).sqrt() >= cutoff  # (H, W)
    return diff[..., mask].mean()


def psnr_loss(x_rec: torch.Tensor, x_true: torch.Tensor, ceiling: float = 50.0) -> torch.Tensor:
    """How many dB each image's PSNR falls short of ``ceiling``, averaged over the batch.

    ``10·log10(1 + MSE_i / 10^(−ceiling/10))`` is ``ceiling − PSNR_i`` wherever PSNR_i is well below the ceiling,
    and stays positive. Under MSE an image with a strong blur or heavy noise (a large error) outweighs an easy
    one by orders of magnitude; in dB each counts the same, as in the mean PSNR that the tables report.
    """
    mse = (x_rec - x_true).pow(2).flatten(1).mean(1)  # (N,)
    return (10 * torch.log10(1 + mse * 10 ** (ceiling / 10))).mean()


_NETWORKS: dict[tuple[str, str], nn.Module] = {}  # the frozen ImageNet networks, one per (builder, device)
_NETWORKS_LOCK = threading.Lock()


class _Pretrained(nn.Module):
    """A loss over a frozen ImageNet network, built on first use (it is large) and shared by every loss
    of the same kind on the same device; it is kept out of the loss's own modules and state."""

    def __init__(self, build: Callable[[], nn.Module]):
        super().__init__()
        self._build = build

    def network(self, device: torch.device) -> nn.Module:
        key = (self._build.__name__, str(device))
        with _NETWORKS_LOCK:
            if key not in _NETWORKS:
                _NETWORKS[key] = self._build().to(device)
            return _NETWORKS[key]


class PerceptualLoss(_Pretrained):
    """MSE between VGG16 ``features[:16]`` of the two images, grey repeated to three channels."""

    def __init__(self):
        super().__init__(build_vgg16_features)

    def forward(self, x_rec: torch.Tensor, x_true: torch.Tensor) -> torch.Tensor:
        net = self.network(x_rec.device)
        return F.mse_loss(net(x_rec.repeat(1, 3, 1, 1)), net(x_true.repeat(1, 3, 1, 1)))


class LPIPSLoss(_Pretrained):
    """LPIPS (AlexNet v0.1) as a loss: grey repeated to three channels, [0, 1] mapped to [-1, 1]."""

    def __init__(self):
        super().__init__(build_lpips_alex)

    def forward(self, x_rec: torch.Tensor, x_true: torch.Tensor) -> torch.Tensor:
        net = self.network(x_rec.device)
        return net(x_rec.repeat(1, 3, 1, 1) * 2 - 1, x_true.repeat(1, 3, 1, 1) * 2 - 1).mean()


class _Functional(nn.Module):
    def __init__(self, fn: Callable[..., torch.Tensor], **params):
        super().__init__()
        self.fn, self.params = fn, params

    def forward(self, x_rec: torch.Tensor, x_true: torch.Tensor) -> torch.Tensor:
        return self.fn(x_rec, x_true, **self.params)


@dataclass(frozen=True)
class LossInfo:
    name: str
    description: str
    build: Callable[..., nn.Module]  # build(param) when the loss takes one, else build()
    param: str | None = None  # the name of its one optional parameter
    pretrained: bool = False  # needs ImageNet weights


LOSSES: dict[str, LossInfo] = {
    i.name: i
    for i in (
        LossInfo("mse", "Mean squared error: the lecture's default; blurry where unsure.", lambda: _Functional(F.mse_loss)),
        LossInfo(
            "l1", "Mean absolute error: less forgiving of small errors, sharper edges than MSE.", lambda: _Functional(F.l1_loss)
        ),
        LossInfo(
            "ssim", "1 − SSIM (scikit-image's 7×7 window): rewards local structure and contrast.", lambda: _Functional(ssim_loss)
        ),
        LossInfo(
            "ssim_lecture",
            "The lecture's 1 − SSIM with 3×3 windows, as in its loss study.",
            lambda: _Functional(ssim_lecture_loss),
        ),
        LossInfo(
            "fourier",
            "Mean |FFT difference|: every frequency counts equally, fine detail included.",
            lambda: _Functional(fourier_loss),
        ),
        LossInfo(
            "fourier_hp",
            "Fourier loss above a cut-off (fraction of Nyquist, default 0.25): only the detail blur removes.",
            lambda cutoff=0.25: _Functional(fourier_loss, cutoff=_check_cutoff(cutoff)),
            param="cutoff",
        ),
        LossInfo(
            "psnr",
            "50 dB − PSNR of each image, averaged: hard and easy images count the same, as in a mean PSNR.",
            lambda: _Functional(psnr_loss),
        ),
        LossInfo("perceptual", "Distance between VGG16 features: textures over pixels.", PerceptualLoss, pretrained=True),
        LossInfo("lpips", "LPIPS as a loss: a learned perceptual distance.", LPIPSLoss, pretrained=True),
    )
}


def loss_status(name: str) -> tuple[bool, str]:
    """Whether the loss can be used here, and why not (pretrained weights missing)."""
    info = LOSSES[name]
    if not info.pretrained:
        return True, "ready"
    try:
        info.build().network(torch.device("cpu"))  # cached: the training that follows reuses it
    except PretrainedUnavailable as err:
        return False, f"{name} loss unavailable: {err}"
    return True, "ready"


def check_available(loss: WeightedLoss) -> None:
    """Raise ``ValueError`` with the reason when a term of ``loss`` needs weights that are not here."""
    for _, name, _ in loss.terms:
        ok, reason = loss_status(name)
        if not ok:
            raise ValueError(reason)


class WeightedLoss(nn.Module):
    """``Σ weight_i · loss_i(x_rec, x_true)``; ``terms`` keeps the parsed (weight, name, param) triples."""

    def __init__(self, terms: list[tuple[float, str, float | None]]):
        super().__init__()
        self.terms = terms
        self.losses = nn.ModuleList(
            LOSSES[name].build(param) if param is not None else LOSSES[name].build() for _, name, param in terms
        )

    def parts(self, x_rec: torch.Tensor, x_true: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each term's unweighted value, keyed by its spec text (for live plots)."""
        return {_term_text(1.0, n, p): part(x_rec, x_true) for (_, n, p), part in zip(self.terms, self.losses)}

    def total(self, parts: dict[str, torch.Tensor]) -> torch.Tensor:
        """The weighted sum of values returned by ``parts`` (so a training step computes each term once)."""
        return sum(w * value for (w, _, _), value in zip(self.terms, parts.values()))

    def forward(self, x_rec: torch.Tensor, x_true: torch.Tensor) -> torch.Tensor:
        return self.total(self.parts(x_rec, x_true))

    def __str__(self) -> str:
        return " + ".join(_term_text(w, n, p) for w, n, p in self.terms)


def _term_text(weight: float, name: str, param: float | None) -> str:
    text = name if param is None else f"{name}({param:g})"
    return text if weight == 1 else f"{weight:g}*{text}"


_NUMBER = r"(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_TERM = re.compile(rf"^(?:(?P<weight>{_NUMBER})\s*\*?\s*)?(?P<name>[a-z_0-9]+)(?:\((?P<param>{_NUMBER})\))?$")


def parse_loss(spec: str) -> WeightedLoss:
    """``"mse + 0.2*ssim + 0.1*fourier"`` (also ``"0.5 mse + 0.5 l1"``, ``"fourier_hp(0.3)"``) → a loss.

    Raises ``ValueError`` naming the bad term: an unknown loss, a malformed weight, a parameter given
    to a loss that takes none, or an empty spec.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty loss spec; use names such as {', '.join(LOSSES)}, e.g. 'mse + 0.2*ssim'")
    terms: list[tuple[float, str, float | None]] = []
    for raw in spec.lower().split("+"):
        term = raw.strip()
        match = _TERM.match(term)
        if not match:
            raise ValueError(f"cannot read the loss term {term!r}: write WEIGHT*NAME, e.g. '0.2*ssim'")
        name = match["name"]
        if name not in LOSSES:
            raise ValueError(f"unknown loss {name!r} in {term!r}; known losses: {', '.join(LOSSES)}")
        if match["param"] is not None and LOSSES[name].param is None:
            raise ValueError(f"the loss {name!r} takes no parameter (in {term!r})")
        weight = float(match["weight"]) if match["weight"] is not None else 1.0
        if not (weight > 0 and math.isfinite(weight)):
            raise ValueError(f"the weight in {term!r} must be a positive finite number")
        param = float(match["param"]) if match["param"] is not None else None
        if param is not None:
            try:
                LOSSES[name].build(param)  # the builder checks the parameter's range
            except ValueError as err:
                raise ValueError(f"{err} (in {term!r})") from None
        if any(n == name and p == param for _, n, p in terms):
            raise ValueError(f"the loss {_term_text(1.0, name, param)!r} appears twice; give it once with the summed weight")
        terms.append((weight, name, param))
    return WeightedLoss(terms)


# -- losses without ground truth ----------------------------------------------------------------------------------
#
# A clinic has measurements, not clean images. These losses see only the measurement ``y_delta``, the operator ``K``
# and the network ``f``: never ``x_true``. Measurement consistency alone (``mc``) cannot teach what ``K`` deletes
# (any change in its null space keeps ``K f(y) = y``); equivariant imaging (``ei``) adds that the images are
# symmetric — a rotated or mirrored image is as likely as the image — while ``K`` is not: the rotated image seen
# through ``K`` shows what ``K`` hid in the original, so ``f`` must learn it.
#   Chen, Tachella & Davies, "Equivariant Imaging: Learning Beyond the Range Space", ICCV 2021 (arXiv:2103.14756).

EI_REFERENCE = "Chen, Tachella & Davies, Equivariant Imaging: Learning Beyond the Range Space, ICCV 2021"
EI_LINK = "https://arxiv.org/abs/2103.14756"
DIHEDRAL = 8  # the four 90° rotations of a square, each mirrored or not: what ``ei`` draws its transform from


def dihedral(x: torch.Tensor, g: int) -> torch.Tensor:
    """Transform ``g`` (0–7) of the square's symmetry group: ``g % 4`` quarter turns, then mirrored when ``g ≥ 4``."""
    x = torch.rot90(x, g % 4, dims=(-2, -1))
    return x.flip(-1) if g >= 4 else x


@dataclass(frozen=True)
class SelfSupervisedInfo:
    name: str
    label: str
    description: str


SELF_SUPERVISED: dict[str, SelfSupervisedInfo] = {
    i.name: i
    for i in (
        SelfSupervisedInfo("ei", "Equivariant imaging", "||K f(y) − y||² + ||T x̂ − f(K T x̂ + e)||², x̂ = f(y), T a random "
                           "rotation or mirror: consistent with the measurement, and equivariant (Chen et al., 2021)."),
        SelfSupervisedInfo("mc", "Measurement consistency", "||K f(y) − y||² alone: any image K maps onto y is as good, "
                           "so what K deletes is never learned (the ablation of Chen et al., 2021)."),
    )
}  # fmt: skip


def self_supervised_parts(
    name: str,
    model: Callable[[torch.Tensor], torch.Tensor],
    y_delta: torch.Tensor,
    x_rec: torch.Tensor,
    operator,
    noise: float,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """The terms of the loss ``name`` (``SELF_SUPERVISED``) for a batch: ``{"mc": …}`` or ``{"mc": …, "ei": …}``.

    Args:
        model: the network as a function of a measurement (``f``; the operator already bound if it takes one).
        y_delta: the measurements ``(N, 1, H, W)``; ``x_rec = model(y_delta)`` computed by the caller.
        operator: ``K`` (``forward``), the operator that made ``y_delta``.
        noise: the relative noise level added to the re-measured image (the measurements' own).
        generator: draws the transform (and the noise) of ``ei``.
    """
    if name not in SELF_SUPERVISED:
        raise ValueError(f"unknown self-supervised loss {name!r}; choose one of {', '.join(SELF_SUPERVISED)}")
    parts = {"mc": F.mse_loss(operator.forward(x_rec), y_delta)}
    if name == "ei":
        g = int(torch.randint(1, DIHEDRAL, (), generator=generator))  # never the identity: it teaches nothing
        # The transformed reconstruction is the target, held fixed (no gradient through it): measured on the
        # general ResCNN fine-tuned to motion 15 @ 70°, δ 0.02, camera rose 1.3 dB in 160 steps this way and 0.6 dB
        # with the gradient let through both sides.
        x_moved = dihedral(x_rec.detach(), g)  # (N, 1, H, W) for a square H = W
        y_moved = add_relative_noise(operator.forward(x_moved), noise, generator)
        parts["ei"] = F.mse_loss(model(y_moved), x_moved)
    return parts
