"""The CT task: an image becomes a noisy sinogram, and FBP, SIRT or a learned refiner bring it back.

``y_delta = A x_true + e`` with ``A`` the parallel-beam Radon transform (``physics.ct.Radon``) and ``e``
the lecture's relative noise, now relative to the sinogram's norm. The measurement does not live in the
image's domain, so the lecture's networks do not see it directly: the learned models (registry group ``"ct"``)
refine the filtered back-projection (``methods.base.FBPNetwork``), "first a crude reconstruction, then a learned
refinement"; shipped ones sit in the weights manifest under the regime ``ct-<angles>``. Beyond the lecture, a
network handed the operator (the unrolled one) takes the sinogram and the Radon transform
itself; its one CT checkpoint, regime ``ct-any``, serves every number of angles.

``evaluate --task ct`` (``evaluate.run_ct_evaluation``) runs the blur's protocol on these pieces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from recon_demo.checkpoints import CT_ANY, ct_regime
from recon_demo.errors import UnknownName
from recon_demo.models import is_handed_operator, list_models, model_info
from recon_demo.physics.ct import CT_NOISE, LECTURE_ANGLES, Radon, sirt
from recon_demo.physics.noise import add_relative_noise

# SIRT's stopping point, tuned on the held-out images at 60 angles and δ = 0.01 (its best case): 26.42 dB at 50
# iterations, 25.96 at 100, 24.76 at 200, as more iterations fit the noise. (At 20 angles 30 would be best,
# 23.98 dB against 23.69 at 50.)
SIRT_ITERATIONS = 50




def measure(x_true: torch.Tensor, radon: Radon, noise: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``y_delta = A x_true + e``, the noise relative to each sinogram's norm (the global RNG without ``generator``)."""
    return add_relative_noise(radon.forward(x_true), noise, generator)


@dataclass(frozen=True)
class CTBaseline:
    """A classical CT reconstruction: ``fn(radon, y_delta, filter)`` → images ``(N, 1, n, n)``."""

    name: str
    label: str
    description: str
    fn: Callable[[Radon, torch.Tensor, str], torch.Tensor]

    def __call__(self, radon: Radon, y_delta: torch.Tensor, filter: str = "ramp") -> torch.Tensor:
        with torch.no_grad():
            return self.fn(radon, y_delta, filter).clamp(0, 1)


CT_BASELINES: dict[str, CTBaseline] = {
    b.name: b
    for b in (
        CTBaseline(
            "fbp",
            "FBP",
            "Filtered back-projection: each projection ramp-filtered, then smeared back across the image.",
            lambda radon, y, f: radon.fbp(y, f),
        ),
        CTBaseline(
            "sirt",
            "SIRT",
            f"SIRT: {SIRT_ITERATIONS} iterations of x ← x + C Aᵀ R (y − A x), kept in [0, 1]; stopping early regularises.",
            lambda radon, y, f: sirt(radon, y, SIRT_ITERATIONS),
        ),
    )
}


def ct_models() -> list[str]:
    """The networks for CT: the registry's CT group (they refine the FBP), then those handed the operator, which take
    the sinogram and the Radon transform themselves (one checkpoint for every number of angles)."""
    return [*list_models("ct"), *filter(is_handed_operator, list_models("beyond"))]


def parse_models(spec: str | None, shipped_any: list[str] = ()) -> list[tuple[str, str | None]]:
    """``"fbp_resunet=FILE"``, ``"unrolled"`` or ``"all"`` → (name, path or None) pairs. ``"all"`` is every CT
    refiner, and the networks handed the operator among ``shipped_any`` (those with a ``ct-any`` checkpoint)."""
    items: list[tuple[str, str | None]] = []
    for item in (s.strip() for s in (spec or "").split(",")):
        if not item:
            continue
        if item == "all":
            items += [(name, None) for name in ct_models() if name in list_models("ct") or name in shipped_any]
            continue
        name, _, path = item.partition("=")
        name = name.strip()
        if name not in ct_models():
            model_info(name)  # an unknown name says so
            raise UnknownName(f"{name} is not a CT model; CT models: {', '.join(ct_models())}")
        items.append((name, path.strip() or None))
    return items


def ct_regime_of(name: str, angles: int) -> str:
    """The manifest regime of ``name``'s CT checkpoint for ``angles``: ``ct-<angles>`` for a refiner of the FBP,
    ``ct-any`` for a network handed the operator."""
    return CT_ANY if is_handed_operator(name) else ct_regime(angles)


__all__ = [
    "CT_BASELINES",
    "CT_NOISE",
    "LECTURE_ANGLES",
    "CTBaseline",
    "ct_models",
    "ct_regime_of",
    "measure",
    "parse_models",
]
