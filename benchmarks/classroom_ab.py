"""The served app for a class, for two or more checkouts in turn (a before and an after, measured in one sitting):
``python3 -m benchmarks.classroom_ab --rounds 2 /path/to/before .``

For each round and checkout: ``app.py`` is started (``RECON_DEVICE=cpu``), one untimed ``/reconstruct``, then ten
round trips of UNet + ResCNN + Wiener from a ``gradio_client`` with fresh seeds, split by the server's own
``server_ms`` (the methods, the metrics and measurement, the PNGs, and the rest: transport and queue); the idle
server from ``/proc`` over 20 s after 15 s (``loadtest.idle_usage``); and ``loadtest.classroom`` (30 clients × 5 +
3 trainings) unless ``--no-classroom``. One JSON line per run; the clients are this checkout's, so every app is
measured the same way. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from recon_demo.serving.loadtest import classroom, idle_usage, start_app, stop_app

MODELS = "unet,rescnn,wiener"


def measure(repo: str, with_classroom: bool = True) -> dict:
    from gradio_client import Client

    proc, url = start_app(env={"RECON_DEVICE": "cpu", "PYTHONPATH": repo}, root=Path(repo), timeout=180)
    try:
        client = Client(url, verbose=False)
        client.predict(models=MODELS, seed=0, api_name="/reconstruct")
        times, server = [], []
        for seed in range(1, 11):
            start = time.perf_counter()
            out = client.predict(models=MODELS, seed=seed, angle=20 + seed, api_name="/reconstruct")
            times.append((time.perf_counter() - start) * 1000)
            server.append(out["server_ms"])
        part = {key: statistics.median(s[key] for s in server) for key in ("compute", "lab", "encode")}
        roundtrip = statistics.median(times)
        time.sleep(15)
        idle = idle_usage(proc.pid, 20.0)
        report = {"repo": repo, "roundtrip_ms": round(roundtrip, 1), "compute_ms": round(part["compute"], 1),
                  "overhead_ms": round(roundtrip - part["compute"], 1),
                  "metrics_and_measurement_ms": round(part["lab"] - part["compute"], 1), "png_ms": round(part["encode"], 1),
                  "transport_and_queue_ms": round(roundtrip - part["lab"] - part["encode"], 1),
                  "idle_cpu_fraction": idle and round(idle[0], 4), "idle_wakeups_per_s": idle and round(idle[1], 1)}  # fmt: skip
        if with_classroom:
            report["classroom"] = classroom(url, proc.pid)
        return report
    finally:
        stop_app(proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repos", nargs="+", help="checkouts to measure, in turn")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-classroom", action="store_true")
    args = parser.parse_args()
    for repo in args.repos:
        if not (Path(repo) / "app.py").is_file():
            print(f"classroom_ab: no app.py in {repo}", file=sys.stderr)
            return 2
    for _ in range(args.rounds):
        for repo in args.repos:
            print(json.dumps(measure(str(Path(repo).resolve()), not args.no_classroom)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
