"""The app's queue for a classroom: gradio's own queue with three changes, installed by ``classroom_queue(demo)``.

1. **A newer request replaces the same client's older one still waiting.** A client is a session: one open page, or
   one ``gradio_client.Client``. When it asks an endpoint again before its previous request to that endpoint has
   started, the previous one leaves the queue and its caller is told so (``REPLACED``; ``gradio_client`` raises it
   as an ``AppError``). The page sends only the last value of a slider already; this makes the server agree, and a
   script that fires ten requests without waiting costs the class one.
   The newer request takes the older one's place in the line: moving a slider does not send a student to its end.
2. **Fair turns.** Within an endpoint's queue (gradio's concurrency id), a free worker takes the oldest waiting
   request of the client with the fewest requests running anywhere, so a client with requests on several endpoints
   at once cannot hold the workers while the others wait; among clients with as many running, the oldest request
   goes first (arrival order, never changed by an earlier choice).
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
import random
import time
from collections import Counter

import gradio as gr
from gradio import queueing
from gradio.server_messages import ProcessCompletedMessage
from gradio.utils import run_coro_in_background, set_task_name

REPLACED = "replaced by a newer request from the same client to the same endpoint (the last request wins)"
WAKE_S = 1.0  # the longest an idle queue sleeps without being woken (a safety net: pushes and freed workers wake it)
PROGRESS_S = 0.1  # how often progress is sent while something runs (gradio: every 10 ms)
_NEEDS = ("active_jobs", "event_queue_per_concurrency_id", "delete_lock", "event_ids_to_events",
          "get_events", "process_events", "push", "send_message", "broadcast_estimations", "start_processing",
          "start_progress_updates", "reset_iterators", "start", "event_analytics", "_asyncio_tasks", "live_updates")  # fmt: skip


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
        queue._new_signals()
        return queue

    def _new_signals(self) -> None:
        # asyncio events bind to the loop that first waits on them: each start (a launch after a close runs a new
        # server loop) makes its own
        self._work = asyncio.Event()  # set by a push and by a worker that frees: the dispatch loop looks again
        self._running = asyncio.Event()  # set when a request starts: the progress loop has something to send

    def start(self):
        self._new_signals()
        super().start()

    # -- 1. the last request wins ---------------------------------------------------------------------------------

    async def push(self, body, request, username):
        ok, event_id, status = await super().push(body, request, username)
        if ok and status == "success" and (event := self.event_ids_to_events.get(event_id)) is not None:
            async with self.delete_lock:
                self._drop_older(event)
        self._work.set()
        return ok, event_id, status

    def _drop_older(self, event: queueing.Event) -> None:
        """Under ``delete_lock``: the same client's requests to ``event``'s endpoint that still wait leave the queue,
        ``event`` taking the first one's place; each caller is told (gradio's SSE loop then forgets the event)."""
        waiting = self.event_queue_per_concurrency_id[event.concurrency_id].queue
        stale = [e for e in waiting if e is not event and e.session_hash == event.session_hash and e.fn._id == event.fn._id]
        if not stale or event not in waiting:
            return
        waiting.remove(event)
        waiting.insert(waiting.index(stale[0]), event)
        for old in stale:
            waiting.remove(old)
            self.event_ids_to_events.pop(old._id, None)
            if (record := self.event_analytics.get(old._id)) is not None:
                record["status"] = "cancelled"
            self.send_message(old, ProcessCompletedMessage(output={"error": REPLACED, "visible": False, "title": "Replaced"},
                                                           success=False, title="Replaced"))  # fmt: skip
            self.replaced += 1
        self.broadcast_estimations(event.concurrency_id)  # the positions in the line changed

    # -- 2. fair turns --------------------------------------------------------------------------------------------

    def get_events(self):
        """gradio's ``Queue.get_events`` (a queue with work and a free slot, the queues in random order), taking that
        queue's fairest request instead of its oldest; the others keep their order."""
        running = Counter(e.session_hash for job in self.active_jobs if job for e in job)
        concurrency_ids = list(self.event_queue_per_concurrency_id)
        random.shuffle(concurrency_ids)
        for concurrency_id in concurrency_ids:
            event_queue = self.event_queue_per_concurrency_id[concurrency_id]
            waiting = event_queue.queue
            if not waiting or (event_queue.concurrency_limit is not None
                               and event_queue.current_concurrency >= event_queue.concurrency_limit):  # fmt: skip
                continue
            first = waiting[min(range(len(waiting)), key=lambda i: (running[waiting[i].session_hash], i))]
            events = [first]
            if first.fn.batch:  # gradio's batching: the same function's next requests join it
                events += [e for e in waiting if e is not first and e.fn == first.fn][: first.fn.max_batch_size - 1]
            for event in events:
                waiting.remove(event)
            return events, first.fn.batch, concurrency_id
        return None

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

    async def reset_iterators(self, event_id: str):
        # gradio calls this first once a request's slot is free (process_events' finally), before its analytics:
        # the dispatch loop looks for the next request now, not after them
        self._work.set()
        await super().reset_iterators(event_id)

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
