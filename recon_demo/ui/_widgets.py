"""Widgets and API signatures made from a spec's own description (``physics.spec.Param``): a slider per number,
a radio per choice, a hidden box for a field that another control writes. The Reconstruct tab and the ``/reconstruct``
and ``/train`` endpoints are built from these, so a new field of ``OperatorSpec`` appears in both by itself."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable

import gradio as gr

from recon_demo.physics import spec
from recon_demo.physics.spec import Param

CHOICE_LABELS = {"drawn": "draw your own"}  # a choice's words where its value is not enough


def widget(name: str, p: Param, value, visible: bool = True, elem_id: str | None = None, hint: bool = True
           ) -> gr.components.Component:  # fmt: skip
    """The control of one field: its label, unit, bounds, step and (with ``hint``) hint from ``p``; ``elem_id`` is the
    field's name unless given."""
    common = {"label": p.widget_label(), "elem_id": elem_id or name, "visible": visible and p.widget}
    if p.info and hint:
        common["info"] = p.info
    if p.choices:
        return gr.Radio([(CHOICE_LABELS.get(c, c), c) for c in p.choices], value=value, **common)
    if p.kind is str:
        return gr.Textbox(value=value, **common)
    if p.step is None:  # a number typed, not dragged (a seed)
        return gr.Number(value, precision=0 if p.kind is int else None, minimum=p.low, maximum=p.high, **common)
    low = p.low if p.slider_low is None else p.slider_low
    high = p.high if p.slider_high is None else p.slider_high
    return gr.Slider(low, high, value=value, step=p.step, **common)


def spec_widgets(spec_obj, prefix: str = "", names: tuple[str, ...] | None = None, hints: bool = True
                 ) -> dict[str, gr.components.Component]:  # fmt: skip
    """A widget per field of ``spec_obj`` (an ``OperatorSpec`` or any spec), valued as it is, ``elem_id`` the field's
    name after ``prefix``; a field that applies to some blurs only is shown while the spec's blur is one of them.
    ``names`` picks some fields, in that order (a layout that puts two on a row); ``hints=False`` leaves the hints
    out (the page says them elsewhere)."""
    blur = getattr(spec_obj, "blur", None)
    described = spec.params(spec_obj)
    return {name: widget(name, described[name], getattr(spec_obj, name), visible=not described[name].applies_to
                         or blur in described[name].applies_to, elem_id=prefix + name, hint=hints)
            for name in (names or described)}  # fmt: skip


def blur_visibility(spec_cls: type, blur: str) -> list:
    """``gr.update(visible=…)`` for each field of ``spec_cls`` that applies to some blurs only, in field order
    (``scoped_fields``): shown while ``blur`` is one of them."""
    described = spec.params(spec_cls)
    return [gr.update(visible=blur in described[name].applies_to) for name in scoped_fields(spec_cls)]


def scoped_fields(spec_cls: type) -> list[str]:
    """The fields whose widgets ``blur_visibility`` shows and hides."""
    return [name for name, p in spec.params(spec_cls).items() if p.applies_to and p.widget]


def api_signature(fn: Callable, parameters: list[tuple[str, type, object]]) -> Callable:
    """``fn(**kwargs)`` given the signature ``parameters`` (name, annotation, default), which gradio reads for the
    endpoint's parameters and ``gradio_client.view_api`` shows. The spec's fields are spliced in by name."""

    def arguments(args, kwargs) -> dict:
        bound = endpoint.__signature__.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound.arguments

    if inspect.isgeneratorfunction(fn):  # a streaming endpoint stays a generator (gradio streams those)

        def endpoint(*args, **kwargs):
            yield from fn(**arguments(args, kwargs))
    else:

        def endpoint(*args, **kwargs):
            return fn(**arguments(args, kwargs))

    returns = typing.get_type_hints(fn).get("return", inspect.Signature.empty)
    endpoint.__signature__ = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=kind)
         for name, kind, default in parameters], return_annotation=returns,
    )  # fmt: skip
    endpoint.__annotations__ = {name: kind for name, kind, _ in parameters} | {"return": returns}
    endpoint.__name__, endpoint.__doc__ = fn.__name__, fn.__doc__
    return endpoint


def spec_parameters(spec_obj) -> list[tuple[str, type, object]]:
    """(name, type, default) of each field of ``spec_obj``, for ``api_signature``."""
    return [(name, p.kind, getattr(spec_obj, name)) for name, p in spec.params(spec_obj).items()]
