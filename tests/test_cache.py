"""The one bounded, thread-safe cache (``recon_demo.cache.BoundedCache``): least recently used first out, never more
than ``size`` entries, the eviction callback, ``get_or_compute``, and its bound kept under concurrent use."""

from __future__ import annotations

import threading

import pytest

from recon_demo.cache import BoundedCache


def test_the_least_recently_used_entry_goes_first():
    cache = BoundedCache(3)
    for key in "abc":
        cache.put(key, key.upper())
    assert cache.get("a") == "A"  # a read makes "a" the most recent
    cache.put("d", "D")
    assert cache.keys() == ["c", "a", "d"] and "b" not in cache
    cache.put("c", "C2")  # a write too
    assert cache.keys() == ["a", "d", "c"] and cache.get("c") == "C2"
    assert "a" in cache and cache.keys() == ["a", "d", "c"]  # asking whether it is there is not a use
    assert list(cache) == ["a", "d", "c"]


def test_the_size_is_a_bound():
    cache = BoundedCache(4)
    for i in range(20):
        assert cache.put(i, i * i) == i * i  # put returns the value
        assert len(cache) == min(i + 1, 4)
    assert cache.keys() == [16, 17, 18, 19]
    assert cache.get(0) is None and cache.get(0, "gone") == "gone"
    with pytest.raises(ValueError, match="at least one entry"):
        BoundedCache(0)


def test_pop_and_clear():
    cache = BoundedCache(2)
    cache.put("a", 1)
    assert cache.pop("a") == 1 and cache.pop("a", "none") == "none" and len(cache) == 0
    cache.put("b", 2)
    cache.clear()
    assert cache.keys() == [] and cache.get("b") is None


def _finishes(fn, seconds: float = 10.0) -> None:
    """Run ``fn`` in a thread: a deadlock (a lock held where it must not be) fails the test instead of hanging it."""
    errors = []
    worker = threading.Thread(target=lambda: errors.append(None) if fn() is None else None, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "deadlocked: the cache's lock was held"
    assert errors == [None], "the body raised (see the thread's traceback above)"


def test_each_evicted_entry_is_announced_once_outside_the_lock():
    _finishes(_evictions_are_announced_once)


def _evictions_are_announced_once():
    evicted = []

    def on_evict(key, value):
        evicted.append((key, value))
        assert key not in cache  # already gone, and the cache is usable from the callback (no deadlock)

    cache = BoundedCache(2, on_evict=on_evict)
    for i in range(5):
        cache.put(i, str(i))
    assert evicted == [(0, "0"), (1, "1"), (2, "2")]
    cache.put(4, "four")  # replacing an entry evicts nothing
    cache.pop(3)  # nor does popping one
    cache.clear()
    assert evicted == [(0, "0"), (1, "1"), (2, "2")]


def test_get_or_compute_computes_a_missing_value_once_and_keeps_it():
    cache = BoundedCache(2)
    calls = []

    def compute(value):
        calls.append(value)
        return value

    assert cache.get_or_compute("a", lambda: compute(1)) == 1
    assert cache.get_or_compute("a", lambda: compute(2)) == 1  # kept: not computed again
    assert calls == [1]
    cache.put("b", None)  # a stored None is a value, not a miss
    assert cache.get_or_compute("b", lambda: compute(3)) is None and calls == [1]
    cache.get_or_compute("c", lambda: compute(4))
    assert cache.keys() == ["b", "c"]


def test_get_or_compute_holds_no_lock_while_computing():
    cache = BoundedCache(4)
    # the computation itself reads and writes the cache: it would deadlock if the lock were held
    _finishes(lambda: None if cache.get_or_compute("outer", lambda: cache.get_or_compute("inner", lambda: 1) + 1) == 2 else 1)
    assert cache.keys() == ["inner", "outer"]


def test_threads_sharing_a_cache_keep_its_bound_and_its_values():
    size, threads, rounds = 8, 6, 400
    evicted = []
    cache = BoundedCache(size, on_evict=lambda k, v: evicted.append(k))
    errors = []
    start = threading.Barrier(threads)

    def work(t: int) -> None:
        try:
            start.wait()
            for i in range(rounds):
                key = (t * rounds + i) % 24  # overlapping keys across the threads
                value = cache.get_or_compute(key, lambda key=key: key * 10)
                assert value == key * 10
                assert len(cache) <= size
                cache.put(key, key * 10)
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=30)
    assert not errors and not any(w.is_alive() for w in workers)
    keys = cache.keys()
    assert len(keys) == size and len(set(keys)) == size
    assert all(cache.get(k) == k * 10 for k in keys)
    assert all(k in keys or k in evicted for k in range(24))  # every key was added: those not kept were evicted
