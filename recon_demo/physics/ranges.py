"""The operators a general model trains over, and whether a setting lies among them.

``OperatorRanges`` has one range per field of ``OperatorSpec`` that declares one (``Param.train``: the blurs, the
kernel size, the angle, the variance, the kernel styles), the noise's, and the share of draws that are the lecture's
setting. It is generated from the spec (``spec.ranges_class``), so a new field with a range appears here by itself;
its field names are those the manifests and training states have always recorded. ``sample`` draws one (operator,
noise) pair for a training image; ``covers`` says whether a setting is one the ranges could have drawn (the app's
"trained for" badge). ``ValueError`` (from ``validate``) says what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from recon_demo.physics import spec
from recon_demo.physics.blur import LECTURE_NOISE, LECTURE_OPERATOR, OperatorSpec

NOISE_SLACK = 1e-9  # a noise level at the range's top counts as inside it (float round-off of 0.05)


def _validate(self) -> Any:
    """The ranges checked: each drawn field's by its ``Param`` (its bounds are valid operators, so everything in
    between is), the noise's and the lecture's share; ``ValueError`` says what is allowed."""
    for key, (name, p) in spec.trained(OperatorSpec).items():
        problem = spec.check_range(name, p, tuple(getattr(self, key)))
        if problem:
            raise ValueError(problem)
    lo, hi = self.noise
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi):
        raise ValueError(f"the noise range must be two finite numbers, low <= high, and noise levels >= 0, got {self.noise}")
    if not 0 <= self.lecture_share <= 1:
        raise ValueError(f"the lecture's share of the draws must be in [0, 1], got {self.lecture_share}")
    return self


def _sample(self, generator: torch.Generator) -> tuple[OperatorSpec, float]:
    """One (operator, noise level) pair drawn with ``generator``: the lecture's with probability ``lecture_share``,
    else one from the ranges (the fields in their spec's order, then the noise)."""
    if self.lecture_share and float(torch.rand((), generator=generator)) < self.lecture_share:
        return LECTURE_OPERATOR, LECTURE_NOISE

    def uniform(lo: float, hi: float) -> float:
        return lo + (hi - lo) * float(torch.rand((), generator=generator))

    def pick(options):
        return options[int(torch.randint(len(options), (), generator=generator))]

    drawn = {name: spec.drawn_range(p, getattr(self, key), uniform, pick) for key, (name, p) in spec.trained(OperatorSpec).items()}
    return OperatorSpec(**drawn), uniform(*self.noise)


def _covers(self, operator: OperatorSpec, noise: float | None = None) -> bool:
    """Whether ``operator`` (and ``noise``, when given) is one these ranges could draw: its blur among the blurs, and
    each field that applies to that blur inside its range (an angle modulo its ``Param.period``)."""
    if noise is not None and not self.noise[0] <= noise <= self.noise[1] + NOISE_SLACK:
        return False
    for key, (name, p) in spec.trained(OperatorSpec).items():
        if p.applies_to and operator.blur not in p.applies_to:
            continue  # a field of another kind (a Gaussian's variance for a motion blur)
        value, allowed = getattr(operator, name), getattr(self, key)
        if p.kind is str:
            if value not in allowed:
                return False
            continue
        value = value % p.period if p.period else value
        if not allowed[0] <= value <= allowed[1]:
            return False
    return True


def _from_record(cls, operator: Mapping, noise: Mapping) -> Any:
    """The ranges a manifest entry recorded (``asdict`` of the ranges, the noise's ``range``); a range it does not
    record is the default's (older manifests said ``styles`` for ``kernel_styles``)."""
    operator = dict(operator)
    if "styles" in operator:
        operator["kernel_styles"] = operator.pop("styles")
    known = {k: tuple(v) for k, v in operator.items() if k in spec.trained(OperatorSpec)}
    return cls(**known, noise=tuple(noise.get("range", cls().noise)))


OperatorRanges = spec.ranges_class(
    OperatorSpec, "OperatorRanges",
    extra={"noise": (tuple, (0.0, 0.05)),  # relative noise level, uniform
           "lecture_share": (float, 0.0)},  # the fraction of draws that are exactly the lecture's setting
    doc="Random operators for a general model: a range per drawn field of ``OperatorSpec``, the noise's, and the "
        "share of draws that are the lecture's setting (motion 9 @ 20°, δ 0.01).",
    methods={"validate": _validate, "sample": _sample, "covers": _covers, "from_record": classmethod(_from_record),
             "__module__": __name__},
)  # fmt: skip


# The shipped general models' regime. One draw in four is the lecture's setting, where the app opens: measured
# without it, a general SimpleCNN (7×7 pixels of view) ends 1.7 dB behind the course one there.
GENERAL_RANGES = OperatorRanges(lecture_share=0.25)
