"""Reading a server process's memory and CPU time from /proc (Linux), and its log, for the load and browser tests.

CPU time is reported, never compared with a rate: a busy machine gives a server less of a core than an idle
one. What a test asserts is what the server says it did (its log lines) and bounds that a loaded machine meets.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from recon_demo.serving.loadtest import cpu_seconds, memory_mb

__all__ = ["cpu_over", "cpu_seconds", "log_size", "memory_mb", "wait_for_line"]


def cpu_over(pid: int, seconds: float) -> float:
    """CPU seconds the process uses over the next ``seconds`` of wall time."""
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return cpu_seconds(pid) - before


def log_size(path: Path) -> int:
    """Where a log file ends now, to wait for lines written after this point."""
    return path.stat().st_size if path.exists() else 0


def wait_for_line(path: Path, pattern: str, timeout: float, start: int = 0) -> str:
    """The first line of the log at ``path`` past byte ``start`` that matches ``pattern`` (a regex), waiting up to
    ``timeout`` seconds for it; fails with the log's tail when it never comes."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_bytes()[start:].decode(errors="replace") if path.exists() else ""
        for line in text.splitlines():
            if re.search(pattern, line):
                return line
        if time.monotonic() > deadline:
            raise AssertionError(f"no line matching {pattern!r} in {path} within {timeout:.0f} s; it ends with:\n{text[-2000:]}")
        time.sleep(0.2)
