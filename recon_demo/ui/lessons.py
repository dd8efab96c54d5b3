"""The lesson bar above the tabs: a menu of lessons (``recon_demo.lab.lessons``); picking one sets the Reconstruct
controls, opens the lesson's tab, shows its two lines with its own link, and runs the reconstruction. The widgets it
sets belong to other tabs: ``ui.build_app`` hands them over (``Targets``), since a tab never imports another."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from recon_demo.lab.lessons import LESSONS
from recon_demo.lab.setting import FLAT_FIELDS
from recon_demo.ui._setting import control_values

NO_LESSON = ("**Pick a lesson** in the menu: one click sets the controls, opens the tab and says what to look at, for one point of "
             "the lecture. Or explore freely below.")


@dataclass
class LessonBar:
    menu: gr.Dropdown
    text: gr.Markdown


@dataclass
class Targets:
    """What a lesson sets, in the other tabs, and then runs (``ui.build_app`` hands them over)."""

    controls: list  # the Reconstruct controls, in ``FLAT_FIELDS`` order
    tabs: gr.Tabs
    sweep_parameter: gr.Radio  # the Robustness sweep's parameter
    show_errors: gr.Checkbox  # the Reconstruct error maps' switch
    measured: gr.Checkbox  # "my image is already blurred"
    run: dict  # the Reconstruct run, as ``.then`` takes it: fn, inputs, outputs


def build() -> LessonBar:
    """The menu and the lesson's text; ``wire`` connects them once the tabs exist."""
    with gr.Row(equal_height=True, elem_id="lesson_bar"):
        menu = gr.Dropdown([(item.title, item.key) for item in LESSONS.values()], value=None, label="Lesson",
                           show_label=False, container=False, scale=1, min_width=320, elem_id="lesson")  # fmt: skip
        text = gr.Markdown(NO_LESSON, elem_id="lesson_text")
    return LessonBar(menu, text)


def lesson_text(key: str | None) -> str:
    """The lesson's two lines and its link (relative, so it works on any host)."""
    if key not in LESSONS:
        return NO_LESSON
    item = LESSONS[key]
    return f"**{item.title}.** {item.text} [Link to this lesson](?lesson={key})"


def apply(key: str | None) -> tuple:
    """The lesson handler: the controls' values (unchanged without a lesson), then ``show``'s text, tab and parameter."""
    controls = control_values(LESSONS[key].setting()) if key in LESSONS else [gr.update() for _ in FLAT_FIELDS]
    return (*controls, *show(key))


def show(key: str | None) -> tuple:
    """After a lesson's link set the controls: its text, its tab, its sweep's parameter, the error maps (on where
    the lesson looks at them, else as they were) and whether its picture is already blurred."""
    if key not in LESSONS:
        return NO_LESSON, gr.update(), gr.update(), gr.update(), gr.update()
    item = LESSONS[key]
    return (lesson_text(key), gr.Tabs(selected=item.tab), gr.update(value=item.sweep) if item.sweep else gr.update(),
            gr.update(value=True) if item.errors else gr.update(), gr.update(value=item.measured))  # fmt: skip


def show_outputs(bar: LessonBar, targets: Targets) -> list:
    """What ``show`` fills."""
    return [bar.text, targets.tabs, targets.sweep_parameter, targets.show_errors, targets.measured]


def wire(bar: LessonBar, targets: Targets) -> None:
    """Picking a lesson: the controls, the text, the tab and the sweep's parameter, then the reconstruction. (A tab
    the app opens fires its "select" as a click does: Inspect then fills itself.)"""
    outputs = [*targets.controls, *show_outputs(bar, targets)]
    bar.menu.input(apply, bar.menu, outputs, api_visibility="private", trigger_mode="always_last").then(
        **targets.run, api_visibility="private")  # fmt: skip
