"""Reading a server process's memory and CPU time from /proc (Linux), and its log, for the load and browser tests.

CPU time is reported, never compared with a rate: a busy machine gives a server less of a core than an idle
one. What a test asserts is what the server says it did (its log lines) and bounds that a loaded machine meets.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path


def memory_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
