"""The one check for a number that a person or a client typed: finite, in its range, an integer where it must be,
with a message that says what is allowed. The lab, the CT lab, the live loss study and the evaluate CLI use it;
each passes the error type its callers catch."""

from __future__ import annotations

import math


def _bound(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


def check_finite(name: str, value: float) -> float:
    """``value`` as a finite float; ``ValueError`` otherwise (a kernel's angle, a noise level)."""
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value


def check_number(name: str, value, lo: float, hi: float, integer: bool = False, error: type[ValueError] = ValueError) -> float | int:
    """``value`` as a finite number (an integer when asked) in [lo, hi]; ``error`` says what is allowed."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise error(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(v) or not lo <= v <= hi or (integer and not v.is_integer()):
        kind = "an integer" if integer else "a number"
        raise error(f"{name} must be {kind} in [{_bound(lo)}, {_bound(hi)}], got {value!r}")
    return int(v) if integer else v
