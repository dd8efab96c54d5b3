"""The classroom's queue (``recon_demo.ui.queue``) through a real server and real ``gradio_client`` clients.

A small app with two endpoints that share one queue: ``hold`` blocks its worker until the test opens its gate, so
the test decides what runs and what waits; ``quick`` returns at once. Every start is recorded in order.
"""

from __future__ import annotations

import threading
import time

import gradio as gr
import pytest
from gradio_client import Client

from recon_demo.ui.queue import REPLACED, ClassroomQueue, classroom_queue

WAIT_S = 30


class Recorder:
    def __init__(self):
        self.started: list[str] = []
        self.gates: dict[str, threading.Event] = {}
        self.lock = threading.Lock()

    def gate(self, tag: str) -> threading.Event:
        with self.lock:
            return self.gates.setdefault(tag, threading.Event())

    def hold(self, tag: str) -> str:
        with self.lock:
            self.started.append(f"hold {tag}")
        if not self.gate(tag).wait(WAIT_S):
            raise RuntimeError(f"the test never opened {tag}'s gate")
        return tag

    def quick(self, tag: str) -> str:
        with self.lock:
            self.started.append(f"quick {tag}")
        return tag


def _serve(limit: int):
    rec = Recorder()
    with gr.Blocks() as demo:
        box = gr.Textbox()
        gr.Button("hold").click(rec.hold, box, box, api_name="hold", concurrency_id="shared", concurrency_limit=limit)
        gr.Button("quick").click(rec.quick, box, box, api_name="quick", concurrency_id="shared", concurrency_limit=limit)
    classroom_queue(demo.queue())
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True)
    return demo, rec


@pytest.fixture(params=[1, 2], ids=["one worker", "two workers"])
def served(request):
    demo, rec = _serve(limit=request.param)
    yield demo, rec
    for gate in rec.gates.values():
        gate.set()
    demo.close()


one_worker = pytest.mark.parametrize("served", [1], indirect=True)
two_workers = pytest.mark.parametrize("served", [2], indirect=True)


def _until(condition, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _waiting(demo) -> int:
    return len(demo._queue)


@one_worker
def test_a_clients_newer_request_replaces_its_older_one_still_waiting(served):
    demo, rec = served
    assert isinstance(demo._queue, ClassroomQueue)
    c, a, b = (Client(demo.local_url, verbose=False) for _ in range(3))
    held = c.submit("c", api_name="/hold")
    _until(lambda: rec.started == ["hold c"], "c's request to start")
    a1 = a.submit("a1", api_name="/quick")
    _until(lambda: _waiting(demo) == 1, "a1 to wait")
    a2 = a.submit("a2", api_name="/quick")  # same client, same endpoint: a1 leaves the queue
    _until(lambda: demo._queue.replaced == 1, "a1 to be replaced")
    b1 = b.submit("b1", api_name="/quick")
    _until(lambda: _waiting(demo) == 2, "b1 to wait")  # submit returns at once: each arrival is awaited, in order
    a3 = a.submit("a3", api_name="/hold")  # same client, another endpoint: kept
    _until(lambda: _waiting(demo) == 3, "a2, b1 and a3 to wait")
    b2 = b.submit("b2", api_name="/quick")  # b's newer request takes b1's place in the line, before a3
    _until(lambda: demo._queue.replaced == 2, "b1 to be replaced")
    for stale in (a1, b1):
        with pytest.raises(Exception, match="replaced by a newer request"):
            stale.result(timeout=WAIT_S)
    rec.gate("c").set()
    rec.gate("a3").set()
    assert [j.result(timeout=WAIT_S) for j in (held, a2, b2, a3)] == ["c", "a2", "b2", "a3"]
    assert rec.started == ["hold c", "quick a2", "quick b2", "hold a3"]  # a1, b1 never ran; the others in their order
    assert demo._queue.replaced == 2
    assert "last request wins" in REPLACED


@one_worker
def test_a_request_that_already_runs_is_not_replaced(served):
    demo, rec = served
    a = Client(demo.local_url, verbose=False)
    first = a.submit("a1", api_name="/hold")
    _until(lambda: rec.started == ["hold a1"], "a1 to start")
    second = a.submit("a2", api_name="/hold")
    _until(lambda: _waiting(demo) == 1, "a2 to wait")
    rec.gate("a1").set()
    rec.gate("a2").set()
    assert (first.result(timeout=WAIT_S), second.result(timeout=WAIT_S)) == ("a1", "a2")
    assert demo._queue.replaced == 0


@two_workers
def test_a_free_worker_serves_the_client_with_least_running_first(served):
    demo, rec = served
    c, a, b = (Client(demo.local_url, verbose=False) for _ in range(3))
    jobs = [c.submit("c", api_name="/hold"), a.submit("a", api_name="/hold")]
    _until(lambda: len(rec.started) == 2, "both workers to be busy")
    jobs.append(a.submit("a-quick", api_name="/quick"))  # a asks more while its first request runs
    _until(lambda: _waiting(demo) == 1, "a's second request to wait")
    jobs.append(b.submit("b-quick", api_name="/quick"))  # later, but b has nothing running
    _until(lambda: _waiting(demo) == 2, "b's request to wait")
    rec.gate("c").set()  # one worker frees: plain gradio would take a's request, the older
    _until(lambda: len(rec.started) == 4, "both waiting requests to start")
    rec.gate("a").set()
    assert [j.result(timeout=WAIT_S) for j in jobs] == ["c", "a", "a-quick", "b-quick"]
    assert rec.started[2:] == ["quick b-quick", "quick a-quick"]


@one_worker
def test_an_idle_queue_sleeps_until_a_request_comes(served, monkeypatch):
    demo, rec = served
    queue = demo._queue
    monkeypatch.setattr("recon_demo.ui.queue.WAKE_S", 600.0)  # no safety net: only a push can wake the queue now
    wakes = []
    original = queue._sleep_until

    async def counted(signal, timeout):
        wakes.append(signal)
        await original(signal, timeout)

    queue._sleep_until = counted
    time.sleep(1.5)  # a sleep begun before the patch ends within WAKE_S's old second: both loops now sleep counted
    assert {id(queue._work), id(queue._running)} == {id(s) for s in wakes}
    before = len(wakes)
    time.sleep(3.0)
    assert len(wakes) == before, f"an idle queue woke {len(wakes) - before} times in 3 s (gradio's own: ~3,000)"
    job = Client(demo.local_url, verbose=False).submit("x", api_name="/quick")
    assert job.result(timeout=WAIT_S) == "x"  # the push woke it: the safety net is ten minutes away
    assert rec.started == ["quick x"]
    _until(lambda: len(wakes) >= before + 2, "both loops to go back to sleep")  # the dispatch loop, the progress loop
