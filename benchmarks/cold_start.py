"""The app's cold start and first requests, for one or more checkouts in turn (a before and an after, measured in
one run): ``python3 -m benchmarks.cold_start --rounds 2 /path/to/before .``

For each checkout and round: ``app.py`` is started, the port polled until it answers (``server_up_s``), then two
``/reconstruct`` calls of ``cnn,unet,wiener`` with LPIPS, each with a new noise seed: the first one's time
(``first_request_s``), the total from the start (``cold_start_s``), the second one's (``second_request_s``).
Nothing is asserted; ``bench`` reports ``cold_start_s`` and ``first_request_ms`` for the checkout it runs in.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure(repo: str, timeout: float = 180.0) -> dict:
    from gradio_client import Client

    port = _free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False", PYTHONPATH=repo)
    start = time.time()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.time() - start > timeout or proc.poll() is not None:
                    raise RuntimeError(f"{repo}: app.py did not start") from None
                time.sleep(0.05)
        up = time.time()
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        first = time.time()
        client.predict(models="cnn,unet,wiener", seed=0, api_name="/reconstruct")
        served = time.time()
        client.predict(models="cnn,unet,wiener", seed=1, api_name="/reconstruct")
        second = time.time()
    finally:
        proc.terminate()
        proc.wait()
    return {"server_up_s": round(up - start, 2), "cold_start_s": round(served - start, 2),
            "first_request_s": round(served - first, 2), "second_request_s": round(second - served, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repos", nargs="+", help="checkouts to measure, in turn")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    out: dict[str, list] = {}
    for _ in range(args.rounds):
        for repo in args.repos:
            out.setdefault(repo, []).append(measure(os.path.abspath(repo)))
            print(repo, out[repo][-1], flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
