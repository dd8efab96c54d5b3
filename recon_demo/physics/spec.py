"""Specs that describe themselves: each field of an operator spec (``blur.OperatorSpec``, ``ct.CTSpec``) carries a
``Param`` saying its type, bounds, default, label, unit, slider step, URL key, CLI flags, which blurs it applies to
and the range the general regime trains over. Everything that takes a spec from a person is generated from that
one place: validation (``validated``), the URL keys (``url_keys``), the CLI flags (``add_arguments`` and
``from_args``), the training ranges (``ranges_class``, ``physics.ranges``); the app's widgets and its API signature are made from the
same ``Param`` in ``recon_demo.ui``. A new operator parameter is its field (with ``applies_to`` naming its blur kinds), and its use in its kind's
builder (``physics.kernels.BLUR_KINDS``).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from recon_demo.validation import check_number


@dataclass(frozen=True)
class Param:
    """What one field of a spec is, for every place that shows, reads or checks it."""

    label: str  # the words a person reads: "Motion angle"
    kind: type  # int, float or str
    low: float | None = None  # numbers: the smallest value allowed
    high: float | None = None  # numbers: the largest value allowed
    choices: tuple = ()  # the values allowed (a string's, or an integer's such as the CT image sizes; empty: any)
    odd: bool = False  # integers that must be odd (a kernel's side)
    step: float | None = None  # a slider's step (None: no slider; a choice is a radio, other text a hidden box)
    slider_low: float | None = None  # where the slider starts, when it is narrower than what the API accepts
    slider_high: float | None = None
    unit: str = ""  # shown after the label: "°", "px²"
    url: str | None = None  # the URL's key (a short name a teacher can type); None: the field's name
    flags: tuple[str, ...] = ()  # the CLI's option strings; empty: --field-name
    applies_to: tuple[str, ...] = ()  # the blurs the field matters for (empty: all); elsewhere it is hidden
    train: tuple | None = None  # the general regime's default range: (low, high) for numbers, the options for choices
    train_name: str | None = None  # the range's field in OperatorRanges (default: the field's name)
    train_flags: tuple[str, ...] = ()  # the train CLI's flags for the range (empty: --<train_name with dashes>)
    info: str = ""  # a hint under the widget
    widget: bool = True  # shown as a widget of its own (``False``: written by another control, e.g. the PSF pad)
    words: str = ""  # how messages name it (default: the field's name, "kernel_size" → "kernel size")
    period: float | None = None  # numbers equal modulo this (a motion's angle: 180°), for the training ranges' ``covers``

    def named(self, name: str) -> str:
        """How messages name field ``name``: ``words``, or the name itself ("kernel_size" → "kernel size")."""
        return self.words or name.replace("_", " ")

    def widget_label(self) -> str:
        return f"{self.label} ({self.unit})" if self.unit else self.label

    def check(self, name: str, value: Any) -> Any:
        """``value`` checked and normalised; ``ValueError`` says what is allowed (naming the field in words)."""
        words = self.named(name)
        if self.kind is str:
            if not isinstance(value, str):
                raise ValueError(f"{words} must be text, got {value!r}")
            if self.choices and value not in self.choices:
                raise ValueError(f"{words} must be one of {', '.join(self.choices)}, got {value!r}")
            return value
        number = check_number(words, value, self.low, self.high, integer=self.kind is int)
        if self.odd and number % 2 == 0:
            raise ValueError(f"{words} must be odd, got {number}")
        if self.choices and number not in self.choices:
            raise ValueError(f"{words} must be one of {', '.join(map(str, self.choices))}, got {number}")
        return number


def param(default: Any, label: str, kind: type, **kw) -> Any:
    """A dataclass field with its ``Param`` (``field(default=…, metadata={"param": …})``)."""
    return field(default=default, metadata={"param": Param(label, kind, **kw)})


def same_as(spec_cls: type, name: str, **changes) -> Any:
    """A field described as ``spec_cls``'s field ``name`` (its default and ``Param``, with ``changes``): a setting that
    holds a spec's value keeps one description of it."""
    (f,) = [f for f in dataclasses.fields(spec_cls) if f.name == name]
    p = dataclasses.replace(f.metadata["param"], **{k: v for k, v in changes.items() if k != "default"})
    return field(default=changes.get("default", f.default), metadata={"param": p})


def params(spec: Any) -> dict[str, Param]:
    """The spec class's (or instance's) fields and their ``Param``, in declaration order."""
    return {f.name: f.metadata["param"] for f in dataclasses.fields(spec) if "param" in f.metadata}


def defaults(spec_cls: type) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(spec_cls) if "param" in f.metadata}


def validated(spec: Any) -> Any:
    """A copy of ``spec`` with every field checked against its ``Param``; ``ValueError`` says what is allowed."""
    return dataclasses.replace(spec, **{name: p.check(name, getattr(spec, name)) for name, p in params(spec).items()})


def url_keys(spec_cls: type) -> dict[str, str]:
    """URL key → field name."""
    return {(p.url or name): name for name, p in params(spec_cls).items()}


def flags_of(name: str, p: Param) -> tuple[str, ...]:
    return p.flags or ("--" + name.replace("_", "-"),)


def add_arguments(parser: argparse.ArgumentParser | Any, spec_cls: type, defaults_from: Any = None) -> None:
    """One CLI flag per field (``Param.flags``), with its type, choices, default (``defaults_from`` or the class's)
    and help; a flag the parser has already is left as it is (one flag may serve two tasks)."""
    have = set(getattr(parser, "_option_string_actions", {}))
    for name, p in params(spec_cls).items():
        flags = flags_of(name, p)
        if have & set(flags):
            continue
        default = getattr(defaults_from, name) if defaults_from is not None else defaults(spec_cls)[name]
        text = p.widget_label()
        if p.low is not None and p.high is not None:
            text += f", {'an odd integer' if p.odd else 'an integer' if p.kind is int else 'a number'} in [{p.low:g}, {p.high:g}]"
        if p.applies_to:
            text += f"; {', '.join(p.applies_to)} only"
        text += f" (default {default!r})"
        parser.add_argument(*flags, dest=name, type=p.kind, default=default, choices=p.choices or None, help=text)


def number_text(value: Any) -> str:
    """A value as the text forms and the CLI write it: ``20`` for 20.0, the shortest text that reads back the same."""
    if not isinstance(value, float):
        return str(value)
    short = f"{value:g}"
    return short if float(short) == value else repr(value)


def command_flags(spec_obj: Any, keep: tuple[str, ...] | None = None) -> str:
    """The CLI flags that rebuild ``spec_obj`` (``add_arguments``' first flag of each field): every field that applies
    to its blur (a field of another kind is left out); with ``keep``, a field at its default only when it is named
    there (``--angles 60`` always, ``--size 256`` never)."""
    kind = getattr(spec_obj, "blur", None)
    words = []
    for name, p in params(spec_obj).items():
        value = getattr(spec_obj, name)
        if (p.applies_to and kind not in p.applies_to) or value == "":
            continue
        if keep is not None and name not in keep and value == defaults(type(spec_obj))[name]:
            continue
        words += [flags_of(name, p)[0], number_text(value)]
    return " ".join(words)


def from_args(spec_cls: type, args: argparse.Namespace, **overrides) -> Any:
    """The spec the flags describe (``add_arguments``), validated: ``ValueError`` says what is allowed."""
    values = {name: getattr(args, name) for name in params(spec_cls) if hasattr(args, name)}
    return validated(spec_cls(**(values | overrides)))


def trained(spec_cls: type) -> dict[str, tuple[str, Param]]:
    """The fields the general regime draws at random: range name (``Param.train_name``) → (field, ``Param``)."""
    return {(p.train_name or f): (f, p) for f, p in params(spec_cls).items() if p.train is not None}


def ranges_class(spec_cls: type, name: str, extra: dict[str, tuple[type, Any]], doc: str, methods: dict) -> type:
    """A frozen dataclass with one range per field that has a ``Param.train`` (``trained``): ``(low, high)`` for a
    number, the options for a choice; then the ``extra`` fields (name → (type, default)) and ``methods``. Its field
    names are the ``Param.train_name``, so what manifests and training states recorded still reads."""
    made = [(key, tuple, field(default=p.train)) for key, (_, p) in trained(spec_cls).items()]
    made += [(key, kind, field(default=default)) for key, (kind, default) in extra.items()]
    return dataclasses.make_dataclass(name, made, frozen=True, namespace={"__doc__": doc, **methods})


def add_range_arguments(parser: argparse.ArgumentParser | Any, spec_cls: type, notes: dict[str, str] | None = None) -> None:
    """The train CLI's range flags (``--kernel-sizes 3,15``), one per ``trained`` field, into ``ranges_<name>``
    (None: the default range); ``notes`` adds to a flag's help (what else it means)."""
    for key, (_, p) in trained(spec_cls).items():
        flags = p.train_flags or ("--" + key.replace("_", "-"),)
        if p.kind is str:
            form, metavar = f"a comma list of {', '.join(p.train)} (default all)", "A,B"
        else:
            form, metavar = f"LOW,HIGH (default {p.train[0]:g},{p.train[1]:g})", "LOW,HIGH"
        parser.add_argument(*flags, dest=f"ranges_{key}", metavar=metavar,
                            help=f"general: {p.label.lower()}s, {form}" + (notes or {}).get(key, ""))  # fmt: skip


def ranges_from_args(spec_cls: type, args: argparse.Namespace) -> dict[str, tuple]:
    """Each ``trained`` field's range from its flag (``add_range_arguments``): a comma list of names, or LOW,HIGH."""
    out = {}
    for key, (name, p) in trained(spec_cls).items():
        text = getattr(args, f"ranges_{key}", None)
        if text is None:
            continue
        items = [s.strip() for s in str(text).split(",") if s.strip()]
        if p.kind is str:
            out[key] = tuple(items)
            continue
        try:
            values = tuple(p.kind(float(v)) if p.kind is int else float(v) for v in items)
        except ValueError:
            values = ()
        if len(values) != 2:
            raise ValueError(f"the {p.named(name)} range is two numbers LOW,HIGH, got {text!r}")
        out[key] = values
    return out


def drawn_range(p: Param, lo_hi: tuple, uniform, pick) -> Any:
    """One draw of a ``Param``'s range: a choice picked, an odd or plain integer picked, a float uniform."""
    if p.kind is str:
        return pick(lo_hi)
    if p.kind is int:
        return pick(list(range(int(lo_hi[0]), int(lo_hi[1]) + 1, 2 if p.odd else 1)))
    return uniform(*lo_hi)


def check_range(name: str, p: Param, values: tuple) -> str | None:
    """What is wrong with a training range of field ``name`` (None: nothing)."""
    words = p.named(name)
    if p.kind is str:
        if not values or any(v not in p.train for v in values):  # (the default range holds every choice one can train)
            return f"{words}s must be a non-empty list of {', '.join(p.train)}, got {list(values)}"
        return None
    if len(values) != 2 or not all(math.isfinite(float(v)) for v in values) or values[0] > values[1]:
        return f"the {p.label.lower()} range must be two finite numbers, low <= high, got {tuple(values)}"
    for v in values:
        try:
            p.check(name, v)
        except ValueError as err:
            return str(err)
    return None
