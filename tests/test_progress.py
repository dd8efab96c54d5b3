"""Progress of long jobs (``recon_demo.progress``) and what the CLIs do with it: progress on stderr only (a bar
on a terminal, a line per phase elsewhere, nothing with ``--quiet``), the result alone on stdout, and Ctrl-C
ending a command with one line and status 130."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recon_demo.progress import CLIProgress, no_progress

ROOT = Path(__file__).resolve().parents[1]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run_phase(progress: CLIProgress, n: int = 4) -> None:
    with progress.phase("images", 0) as phase:
        for i in range(1, n + 1):
            phase(i, n, f"image {i}")


def test_without_a_terminal_a_phase_is_a_start_line_and_an_end_line():
    stream = io.StringIO()
    _run_phase(CLIProgress("evaluate", stream=stream))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "evaluate: images…" and lines[1].startswith("evaluate: images: 4/4 in ") and len(lines) == 2


def test_on_a_terminal_a_phase_is_a_bar_that_clears_itself():
    stream = _Terminal()
    _run_phase(CLIProgress("evaluate", stream=stream))
    text = stream.getvalue()
    assert "evaluate: images" in text and "/4 [" in text and "\r" in text  # a tqdm bar, redrawn in place


def test_quiet_shows_nothing_and_a_failed_phase_claims_no_end():
    stream = io.StringIO()
    _run_phase(CLIProgress("evaluate", quiet=True, stream=stream))
    assert stream.getvalue() == ""
    progress = CLIProgress("evaluate", stream=stream)
    with pytest.raises(RuntimeError), progress.phase("images", 3) as phase:
        phase(1, 3, "image 1")
        raise RuntimeError("boom")
    assert stream.getvalue().splitlines() == ["evaluate: images…"]
    no_progress(1, 2, "anything")  # the core's default says nothing


def _cli(*argv: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "recon_demo", *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)  # fmt: skip


@pytest.mark.parametrize(
    "argv, first",
    [
        (["evaluate", "--models", "cnn", "--baselines", "input,wiener", "--limit", "2"], "evaluate: motion 9 @ 20° (ippy), noise 0.01…"),
        (["evaluate", "--task", "ct", "--baselines", "fbp", "--limit", "1", "--size", "64", "--angles", "20"], "evaluate: CT, "),
    ],
    ids=["deblur", "ct"],
)
def test_evaluate_writes_progress_to_stderr_and_only_json_to_stdout(argv, first):
    proc = _cli(*argv, "--format", "json")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    result = json.loads(out)  # nothing but the result on stdout
    assert result["results"]
    lines = err.splitlines()
    assert lines[0].startswith(first) and lines[-1].split(": ")[-1].split(" in ")[0].count("/") == 1, err
    done, total = lines[-1].rsplit(": ", 1)[1].split(" in ")[0].split("/")
    assert done == total == str(len(result["protocol"]["images"]) * len(result["results"]))
    quiet = _cli(*argv, "--format", "json", "--quiet")
    out, err = quiet.communicate(timeout=300)
    assert quiet.returncode == 0 and json.loads(out)["results"] and err == ""


def test_ctrl_c_ends_evaluate_with_one_line_and_status_130():
    # every held-out image with TV: long enough to be interrupted in the middle
    proc = _cli("evaluate", "--models", "all", "--baselines", "input,wiener,rl,tv", "--format", "json",
                env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    first = proc.stderr.readline()  # the phase's start line: the evaluation is under way
    assert first.startswith("evaluate: motion 9 @ 20°"), first
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert out == "" and "Traceback" not in err
    assert err.strip().splitlines() == ["evaluate: interrupted"], err


def test_ctrl_c_inside_an_import_on_first_use_still_counts_as_an_interrupt():
    # a KeyboardInterrupt while scipy initialises (RL's first use) surfaces as "ImportError: initialization failed"
    from recon_demo.__main__ import _interrupted

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as stop:
            raise ImportError("initialization failed") from stop
    except ImportError as err:
        chained = err
    assert _interrupted(chained) and _interrupted(KeyboardInterrupt())
    assert not _interrupted(ValueError("a real error")) and not _interrupted(ImportError("no module"))


def test_a_ctrl_c_a_library_swallowed_stops_the_command_at_its_next_progress_update(monkeypatch, capsys):
    # a KeyboardInterrupt raised inside a library's first import can become an ImportError the library falls back
    # from; the Ctrl-C is remembered, and the next progress update ends the command with one line and 130
    import types

    from recon_demo import __main__ as cli
    from recon_demo.progress import CTRL_C, CLIProgress

    def swallowing_job(args) -> int:
        try:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, delivered to our handler
            time.sleep(5)
        except KeyboardInterrupt:
            pass  # what a library's `except ImportError: fallback` does to it
        with CLIProgress("evaluate", stream=io.StringIO()).phase("images", 2) as phase:
            phase(1, 2, "image 1")
        return 0

    module = types.SimpleNamespace(main=swallowing_job, add_arguments=lambda parser: None, __doc__="a job")
    monkeypatch.setitem(cli.COMMANDS, "evaluate", (module, "a job"))
    before = signal.getsignal(signal.SIGINT)
    try:
        assert cli.main(["evaluate"]) == 130
    finally:
        CTRL_C.clear()
    assert capsys.readouterr().err.strip() == "evaluate: interrupted"
    assert signal.getsignal(signal.SIGINT) is before  # the CLI's handler is removed again
