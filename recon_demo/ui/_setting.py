"""The Reconstruct setting between its widgets and the core, shared by the tabs that read the Reconstruct controls
(Inspect, Robustness), the lessons and the app's load event: ``Controls`` (one widget per flat field of
``lab.setting.Setting``), ``setting_from`` (their values → a validated ``Setting``), ``control_values`` (a
``Setting`` → their values) and the page's link (``from_url`` reads it, ``link_query`` writes it)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

import gradio as gr

from recon_demo.lab.lessons import LESSONS
from recon_demo.lab.setting import FLAT_FIELDS, Setting, SettingError

# Reading the URL: `?image=camera&angle=20&size=9&noise=0.01&models=cnn,unet` (see Setting.from_query).
COPY_LINK_JS = """(query) => {
    const link = window.location.origin + window.location.pathname + query;
    if (navigator.clipboard) { navigator.clipboard.writeText(link).catch(() => {}); }
    return link;
}"""


@dataclass
class Controls:
    """The widgets that make a ``Setting``: one per flat field (``lab.setting.FLAT_FIELDS``), in that order. The
    operator's and the noise's are made from their spec (``ui._widgets``); ``drawn`` is hidden (the pad writes it)."""

    widgets: dict[str, gr.components.Component]

    def __getitem__(self, name: str) -> gr.components.Component:
        return self.widgets[name]

    def inputs(self) -> list:
        return [self.widgets[name] for name in FLAT_FIELDS]


def setting_from(*values) -> Setting:
    """The validated ``Setting`` of the widgets' values; a bad value raises ``gr.Error`` with what is allowed."""
    try:
        return Setting.of(**dict(zip(FLAT_FIELDS, values))).validated()
    except (SettingError, ValueError, TypeError) as err:
        raise gr.Error(str(err)) from None


def control_values(setting: Setting) -> list:
    """The Reconstruct controls' values for ``setting``, in ``FLAT_FIELDS`` order."""
    flat = setting.flat()
    return [flat[name] if name != "models" else list(setting.models) for name in FLAT_FIELDS]


def link_query(*values) -> str:
    """The share button's handler: the controls' values, then whether the picture is already blurred, as the link's
    query (``?image=…``; the page adds its address in ``COPY_LINK_JS``)."""
    *setting_values, is_measured = values
    return "?" + urlencode(setting_from(*setting_values).to_query() | ({"measured": "1"} if is_measured else {}))


def from_url(request: gr.Request):
    """The controls' values from the page's URL (a lesson's link, ``?lesson=…``, starts from the lesson's setting),
    then the note about parameters that were ignored (shown, with its dismiss button, until the button is pressed:
    the reconstruction's own status does not overwrite it), then the lesson's key (or None), then whether the picture
    is already blurred (``?measured=1``)."""
    query = dict(request.query_params) if request else {}
    key, warnings, base = query.pop("lesson", None), [], None
    measured = query.pop("measured", "0").strip().lower() in ("1", "true", "yes", "on")
    for page_only in ("present", "__theme"):  # read in the page: presentation mode (``ui.PAGE_ON_LOAD_JS``), gradio's theme
        query.pop(page_only, None)
    if key is not None:
        if key in LESSONS:
            base = LESSONS[key].setting()
        else:
            key, warnings = None, [f"ignored lesson={key!r}: the lessons are {', '.join(LESSONS)}"]
    setting, more = Setting.from_query(query, base)
    warnings += more
    note = "" if not warnings else "**Link:** " + "; ".join(warnings)
    return (*control_values(setting), gr.update(value=note, visible=bool(note)), gr.update(visible=bool(note)), key, measured)
