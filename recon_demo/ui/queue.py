"""The app's queue for a classroom: gradio's own queue with three changes, installed by ``classroom_queue(demo)``.

1. **A newer request replaces the same client's older one still waiting.** A client is a session: one open page, or
   one ``gradio_client.Client``. When it asks an endpoint again before its previous request to that endpoint has
   started, the previous one leaves the queue and its caller is told so (``REPLACED``; ``gradio_client`` raises it
   as an ``AppError``). The page sends only the last value of a slider already; this makes the server agree, and a
   script that fires ten requests without waiting costs the class one.
2. **Fair turns.** A free worker takes the oldest waiting request of the client with the fewest requests running,
   so a client with requests on several endpoints at once cannot hold both workers while the others wait; among
   clients with as many running, the oldest request goes first (arrival order).
3. **Quiet when idle.** gradio's queue looks for work every 1 ms and for progress to send every 10 ms, with or
   without any (an idle server, no page open, used 7-8 % of a core on a 2-core CPU; 2 % with those intervals
   slowed to 20 and 100 ms). This queue sleeps until a request arrives or a worker frees, and looks for progress
   only while something runs; otherwise it wakes once a second (``WAKE_S``).

gradio exposes none of this as a setting: ``ClassroomQueue`` subclasses ``gradio.queueing.Queue`` and
``classroom_queue`` checks that the parts it builds on still exist (``tests/test_queue.py`` drives it through a
real server and ``gradio_client``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter

import gradio as gr
from gradio import queueing
from gradio.server_messages import ProcessCompletedMessage
from gradio.utils import run_coro_in_background, set_task_name

REPLACED = "replaced by a newer request from the same client to the same endpoint (the last request wins)"
WAKE_S = 1.0  # the longest an idle queue sleeps without being woken (a safety net: pushes and freed workers wake it)
PROGRESS_S = 0.1  # how often progress is sent while something runs (gradio: every 10 ms)
_NEEDS = ("active_jobs", "event_queue_per_concurrency_id", "delete_lock", "event_ids_to_events", "pending_event_ids_session",
          "get_events", "process_events", "push", "send_message", "broadcast_estimations", "start_processing",
          "start_progress_updates", "event_analytics", "_asyncio_tasks", "live_updates")  # fmt: skip


class ClassroomQueue(queueing.Queue):
    """gradio's queue with replacement, fair turns and idle sleep (the module's docstring)."""

    replaced: int  # requests dropped for a newer one of the same client and endpoint, since the start

    @classmethod
    def adopt(cls, queue: queueing.Queue) -> ClassroomQueue:
        """Turn gradio's queue (``Blocks._queue``, before the server starts) into this one, in place."""
        missing = [name for name in _NEEDS if not hasattr(queue, name)]
        if missing:
            raise RuntimeError(f"this gradio's queue lacks {', '.join(missing)}; update recon_demo.ui.queue")
        queue.__class__ = cls
        queue.replaced = 0
        queue._work = asyncio.Event()  # set by a push and by a worker that frees: the dispatch loop looks again
        queue._running = asyncio.Event()  # set when a request starts: the progress loop has something to send
        return queue

    # -- 1. the last request wins ---------------------------------------------------------------------------------

    async def push(self, body, request, username):
        ok, event_id, status = await super().push(body, request, username)
        if ok and status == "success" and (event := self.event_ids_to_events.get(event_id)) is not None:
            async with self.delete_lock:
                self._drop_older(event)
        self._work.set()
        return ok, event_id, status

    def _drop_older(self, event: queueing.Event) -> None:
        """Under ``delete_lock``: the same client's requests to ``event``'s endpoint that still wait leave the queue."""
        waiting = self.event_queue_per_concurrency_id[event.concurrency_id].queue
        for old in [e for e in waiting if e is not event and e.session_hash == event.session_hash and e.fn._id == event.fn._id]:
            waiting.remove(old)
            self.event_ids_to_events.pop(old._id, None)
            self.pending_event_ids_session.get(old.session_hash, set()).discard(old._id)
            if (record := self.event_analytics.get(old._id)) is not None:
                record["status"] = "cancelled"
            self.send_message(old, ProcessCompletedMessage(output={"error": REPLACED, "visible": False, "title": "Replaced"},
                                                           success=False, title="Replaced"))  # fmt: skip
            self.replaced += 1

    # -- 2. fair turns --------------------------------------------------------------------------------------------

    def get_events(self):
        """gradio's choice, after the fairest waiting request of each queue is moved to its front."""
        running = Counter(e.session_hash for job in self.active_jobs if job for e in job)
        for event_queue in self.event_queue_per_concurrency_id.values():
            waiting = event_queue.queue
            if len(waiting) > 1:
                best = min(range(len(waiting)), key=lambda i: (running[waiting[i].session_hash], i))
                if best:
                    waiting.insert(0, waiting.pop(best))
        return super().get_events()

    # -- 3. quiet when idle ---------------------------------------------------------------------------------------

    @staticmethod
    async def _sleep_until(signal: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(signal.wait(), timeout)
        signal.clear()

    async def start_processing(self) -> None:
        """gradio's dispatch loop (``Queue.start_processing``), sleeping on ``_work`` instead of polling."""
        try:
            while not self.stopped:
                if len(self) == 0 or None not in self.active_jobs:
                    await self._sleep_until(self._work, WAKE_S)
                    continue
                async with self.delete_lock:
                    event_batch = self.get_events()
                if not event_batch:  # every queue with work is at its concurrency limit
                    await self._sleep_until(self._work, WAKE_S)
                    continue
                events, batch, concurrency_id = event_batch
                self.active_jobs[self.active_jobs.index(None)] = events
                event_queue = self.event_queue_per_concurrency_id[concurrency_id]
                event_queue.current_concurrency += 1
                start_time = time.time()
                fn = events[0].fn
                event_queue.start_times_per_fn[fn].add(start_time)
                for event in events:
                    if (record := self.event_analytics.get(event._id)) is not None:
                        record["status"] = "processing"
                task = run_coro_in_background(self.process_events, events, batch, start_time, fn)
                set_task_name(task, events[0].session_hash, fn._id, events[0]._id, batch)
                self._asyncio_tasks.add(task)
                task.add_done_callback(self._asyncio_tasks.discard)
                self._running.set()
                if self.live_updates:
                    self.broadcast_estimations(concurrency_id)
        finally:
            self.stopped = True
            self._cancel_asyncio_tasks()

    async def process_events(self, *args, **kwargs) -> None:
        try:
            await super().process_events(*args, **kwargs)
        finally:  # a worker is free (and a queue under its limit again): look for the next request now
            self._work.set()

    async def start_progress_updates(self) -> None:
        """gradio's progress loop, every ``PROGRESS_S`` while something runs, asleep on ``_running`` otherwise."""
        while not self.stopped:
            events = [event for job in self.active_jobs if job is not None for event in job]
            if not events:
                await self._sleep_until(self._running, WAKE_S)
                continue
            for event in events:
                if event.progress_pending and event.progress:
                    event.progress_pending = False
                    self.send_message(event, event.progress)
            await asyncio.sleep(PROGRESS_S)


def classroom_queue(demo: gr.Blocks) -> gr.Blocks:
    """Install ``ClassroomQueue`` on ``demo`` (after ``demo.queue()``, before ``launch``)."""
    ClassroomQueue.adopt(demo._queue)
    return demo
