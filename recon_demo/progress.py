"""How far a long job is: one small interface for the core's loops, shown by the CLIs and by the app.

A loop that may run for more than a few seconds takes a ``Report``, a callable ``report(done, total, what)``
that it calls after each unit of work (an image × method of ``evaluate``, a point of a robustness sweep, a
phase of ``bench``); ``no_progress`` is the default. The CLIs show it with ``CLIProgress``: on a terminal, a
tqdm bar on stderr; elsewhere (a pipe, a CI log, ``nohup``), one line when a phase starts, one when it ends and
at most one every ``EVERY_S`` seconds between, so that stdout keeps only the result (``--format json`` stays
parseable) and logs stay readable. ``--quiet`` shows nothing. The app wraps gradio's ``Progress`` in the same
callable (``recon_demo.ui``), so the core never imports gradio.

Ctrl-C in a CLI (``on_ctrl_c``) is remembered as well as raised: a library imported on first use can swallow the
KeyboardInterrupt (as an ``ImportError`` it falls back from), and the next ``update`` of a phase raises it again.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

Report = Callable[[int, int, str], None]  # (units done, units in all, what is being done now)
EVERY_S = 30.0  # without a terminal, a line at most this often within a phase


CTRL_C = threading.Event()  # set by a CLI's first Ctrl-C (``on_ctrl_c``)


def on_ctrl_c(signum: int, frame: object) -> None:
    """The CLIs' SIGINT handler: remember the Ctrl-C, then raise KeyboardInterrupt as Python's own handler does."""
    CTRL_C.set()
    raise KeyboardInterrupt


def no_progress(done: int, total: int, what: str) -> None:
    """The default ``Report``: says nothing."""


class Phase:
    """One phase of a job as the CLI shows it; ``update`` moves it on (``set_postfix`` adds figures on a bar)."""

    def __init__(self, prefix: str, name: str, total: int, initial: int, stream: TextIO | None, tty: bool):
        self.name, self.total, self.done = name, total, initial
        self._prefix, self._stream, self._bar = prefix, stream, None
        self._start = self._said = time.monotonic()
        if stream is None:
            return
        if tty:
            from tqdm import tqdm

            self._bar = tqdm(total=total or None, initial=initial, desc=f"{prefix}{name}", file=stream, mininterval=0.5, leave=False,
                             dynamic_ncols=True)  # fmt: skip
        else:
            self._line(f"{name}: from {initial} of {total}" if initial else f"{name}…")

    def __call__(self, done: int, total: int, what: str = "") -> None:
        """A ``Report`` for this phase."""
        self.total = total
        self.update(done, what)

    def update(self, done: int, what: str = "") -> None:
        if CTRL_C.is_set():  # a Ctrl-C that a library swallowed: the job stops here
            raise KeyboardInterrupt
        self.done = done
        if self._bar is not None:
            if self._bar.total != self.total:
                self._bar.total = self.total
                self._bar.refresh()
            if what:
                self._bar.set_description_str(f"{self._prefix}{self.name}: {what}", refresh=False)
            self._bar.update(done - self._bar.n)
        elif self._stream is not None and time.monotonic() - self._said >= EVERY_S and done < self.total:
            self._line(f"{self.name}: {done}/{self.total}" + (f" ({what})" if what else ""))

    def set_postfix(self, figures: dict[str, str]) -> None:
        if self._bar is not None:
            self._bar.set_postfix(figures, refresh=False)

    def close(self, ok: bool = True) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._stream is not None and ok:
            self._line(f"{self.name}: {self.done}/{self.total} in {time.monotonic() - self._start:.1f} s")

    def _line(self, text: str) -> None:
        self._said = time.monotonic()
        print(f"{self._prefix}{text}", file=self._stream, flush=True)


class CLIProgress:
    """Progress of one CLI command on stderr (see the module's docstring); ``quiet`` shows nothing."""

    def __init__(self, command: str, quiet: bool = False, stream: TextIO | None = None):
        self.command = command
        self.stream = None if quiet else (stream or sys.stderr)
        self.tty = bool(self.stream is not None and hasattr(self.stream, "isatty") and self.stream.isatty())

    @contextmanager
    def phase(self, name: str, total: int, initial: int = 0) -> Iterator[Phase]:
        """A phase of ``total`` units (0: not known yet, a ``Report`` call tells); the ``Phase`` it yields is a ``Report``."""
        phase = Phase(f"{self.command}: ", name, total, initial, self.stream, self.tty)
        ok = False
        try:
            yield phase
            ok = True
        finally:
            phase.close(ok)
