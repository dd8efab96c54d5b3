"""The served app under measurement: start ``app.py``, read a process's CPU time and memory, and a classroom at once.

The bench (``python -m recon_demo bench``) and the load tests (``tests/test_load.py``) share these. Only
127.0.0.1 is contacted; every wait is bounded. The process figures come from ``/proc`` (Linux): elsewhere
they are ``None``.
"""

from __future__ import annotations

import os
import re
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository: recon_demo/serving/ is two folders below it
CLASSROOM = (30, 5, 3)  # the classroom: clients, reconstructions each, trainings beside them
CLASSROOM_MODELS = ("cnn,wiener", "cnn,tv", "cnn,rl,wiener")  # what the clients ask, in turn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(weights: Path | None = None, log=subprocess.DEVNULL, timeout: float = 120,
              env: dict[str, str] | None = None, root: Path = ROOT) -> tuple[subprocess.Popen, str]:  # fmt: skip
    """``python app.py`` of the checkout at ``root`` on a free loopback port, started and listening: (the process, its
    URL). Raises ``RuntimeError`` when it exits or does not listen within ``timeout`` seconds."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    if weights is not None:
        env["RECON_WEIGHTS_DIR"] = str(weights)
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}/"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_app(proc)
                raise RuntimeError("app.py did not start") from None
            time.sleep(0.05)


def stop_app(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Terminate the app and reap it; kill it when it does not stop within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def memory_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def voluntary_switches(pid: int) -> int:
    """How many times the process's threads have gone to sleep so far (``voluntary_ctxt_switches``, all threads)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        total += int(re.search(r"^voluntary_ctxt_switches:\s*(\d+)", status, re.M).group(1))
    return total


def idle_usage(pid: int, seconds: float = 10.0) -> tuple[float, float] | None:
    """(the share of one core the process uses, how many times a second its threads wake) over ``seconds`` of
    wall time; ``None`` without /proc. The wake-ups count the same on a fast and a busy machine; the CPU does not."""
    if not Path(f"/proc/{pid}/stat").exists():
        return None
    cpu, woken = cpu_seconds(pid), voluntary_switches(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - cpu) / seconds, (voluntary_switches(pid) - woken) / seconds


def _reconstructions(url: str, client_id: int, n: int) -> list[tuple[float, float]]:
    """(seconds the request took, milliseconds the server worked on it) for each of ``n`` reconstructions."""
    from gradio_client import Client

    client = Client(url, verbose=False)
    times = []
    for i in range(n):
        start = time.perf_counter()
        out = client.predict(image=("camera", "moon", "coffee")[i % 3], angle=10 + client_id, seed=client_id * 100 + i,
                             models=CLASSROOM_MODELS[client_id % 3], api_name="/reconstruct")  # fmt: skip
        if not all(r["png_base64"] for r in out["results"]):
            raise RuntimeError(f"a reconstruction came back without its image: {out['results']}")
        times.append((time.perf_counter() - start, out["server_ms"]["lab"] + out["server_ms"]["encode"]))
    return times


def _training(url: str) -> float:
    from gradio_client import Client

    start = time.perf_counter()
    study = Client(url, verbose=False).predict(configurations="MSE,SSIM", epochs=2, images=8, size=64, api_name="/train")
    if list(study["results"]) != ["MSE", "SSIM"]:
        raise RuntimeError(f"a training ended without its results: {study}")
    return time.perf_counter() - start


def _p95(values: list[float]) -> float:
    """The 95th percentile of one client's few latencies, interpolated between its samples (of five requests:
    between the two slowest; the global p95 keeps ``statistics.quantiles``' default, as before)."""
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else values[0]


def classroom(url: str, pid: int | None = None, clients: int = CLASSROOM[0], per_client: int = CLASSROOM[1],
              trainings: int = CLASSROOM[2], timeout: float = 600) -> dict:  # fmt: skip
    """``clients`` gradio clients reconstructing ``per_client`` times each (a new measurement each time) while
    ``trainings`` small loss studies run: latency p50 / p95 over all requests and each client's own p95 (the median
    and the worst client's), throughput, and the server's memory. A failed request raises (the first error, from
    its client)."""
    # Warm-up, as the teacher's own try before the class: one request of each kind (every method's first use
    # loads its weights or imports its library) and one small training (the optimiser's first use imports
    # torch._dynamo, 2.3 s here); what is measured is the server's steady state.
    for c in range(len(CLASSROOM_MODELS)):
        _reconstructions(url, c, 1)
    if trainings:
        _training(url)
    proc_stat = pid is not None and Path(f"/proc/{pid}/stat").exists()
    server_cpu, client_cpu = cpu_seconds(pid) if proc_stat else None, time.process_time()
    start = time.perf_counter()
    with ThreadPoolExecutor(clients + trainings) as pool:
        studies = [pool.submit(_training, url) for _ in range(trainings)]
        runs = [pool.submit(_reconstructions, url, c, per_client) for c in range(clients)]
        by_client = [f.result(timeout=timeout) for f in runs]
        answers = [t for client in by_client for t in client]
        latencies = [t for t, _ in answers]
        study_s = [f.result(timeout=timeout) for f in studies]
    wall = time.perf_counter() - start
    client_p95 = [_p95([t for t, _ in client]) for client in by_client]
    client_cpu = time.process_time() - client_cpu
    server_cpu = cpu_seconds(pid) - server_cpu if proc_stat else None
    rss, peak = memory_mb(pid) if proc_stat else (None, None)
    return {
        "clients": clients, "per_client": per_client, "trainings": trainings, "failed": 0, "wall_s": round(wall, 2),
        "p50_ms": round(statistics.median(latencies) * 1000), "p95_ms": round(statistics.quantiles(latencies, n=20)[-1] * 1000),
        # each student's own p95 (of their requests): the median student's and the worst-served one's
        "client_p95_ms": {"median": round(statistics.median(client_p95) * 1000), "worst": round(max(client_p95) * 1000)},
        "throughput_per_s": round(len(latencies) / wall, 2), "training_s_max": round(max(study_s, default=0), 1),
        "server_ms_median": round(statistics.median(ms for _, ms in answers)),  # the rest of a latency is waiting
        "server_cpu_s": server_cpu and round(server_cpu, 1), "client_cpu_s": round(client_cpu, 1),  # the clients share the cores
        "rss_mb": rss and round(rss), "peak_rss_mb": peak and round(peak),
    }  # fmt: skip
