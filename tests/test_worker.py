"""ModelWorker: its threads run every session's frames, the newest per session, fairly."""

from __future__ import annotations

import threading
import time

from knn.live.worker import ModelWorker


def test_a_newer_job_replaces_a_waiting_one():
    worker = ModelWorker(name="test-model-worker", threads=1)
    started, gate = threading.Event(), threading.Event()
    ran: list[str] = []
    threads: set[str] = set()

    def job(name):
        def run():
            threads.add(threading.current_thread().name)
            if name == "blocker":
                started.set()
                gate.wait(5)
            ran.append(name)

        return run

    assert worker.submit("a", 0.0, job("blocker")) is False
    assert started.wait(5)  # the blocker is running: what follows waits
    assert worker.submit("b", 1.0, job("b old")) is False
    assert worker.submit("b", 1.0, job("b new")) is True  # "b old" never runs
    assert worker.waiting() == 1
    gate.set()
    deadline = time.monotonic() + 5
    while len(ran) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ran == ["blocker", "b new"]
    assert threads == {"test-model-worker-0"}


def test_two_threads_run_two_keys_at_once_but_never_one_key_twice():
    worker = ModelWorker(name="test-model-worker-3", threads=2)
    lock = threading.Lock()
    running: dict[str, int] = {}
    overlaps: list[str] = []
    most = [0]
    done = threading.Semaphore(0)
    meet = threading.Barrier(3, timeout=5)  # the first job of each key and the test

    def job(key, first=False):
        def run():
            with lock:
                running[key] = running.get(key, 0) + 1
                if running[key] > 1:
                    overlaps.append(key)
                most[0] = max(most[0], sum(running.values()))
            if first:
                meet.wait()  # BrokenBarrierError unless both keys' jobs run at once
            time.sleep(0.02)
            with lock:
                running[key] -= 1
            done.release()

        return run

    for key in ("a", "b"):
        assert worker.submit(key, 0.0, job(key, first=True)) is False
    meet.wait()
    submitted = 2
    for _ in range(20):
        for key in ("a", "b"):
            if not worker.submit(key, 0.0, job(key)):
                submitted += 1
        time.sleep(0.005)
    for _ in range(submitted):
        assert done.acquire(timeout=5)
    assert not overlaps  # a key's frames are never embedded at once: results stay in order
    assert most[0] == 2  # but two keys' frames are


def test_the_key_served_longest_ago_goes_first_and_a_failing_job_stops_nothing():
    worker = ModelWorker(name="test-model-worker-2", threads=1)
    gate = threading.Event()
    order: list[str] = []

    def record(name):
        return lambda: order.append(name)

    def boom():
        raise RuntimeError("a job's own failure")

    started = threading.Event()
    worker.submit("blocker", 0.0, lambda: (started.set(), gate.wait(5)))
    assert started.wait(5)  # the blocker is running: the others wait and are ordered
    worker.submit("served 1 s ago", 100.0, record("served 1 s ago"))
    worker.submit("broken", 50.0, boom)
    worker.submit("served 9 s ago", 92.0, record("served 9 s ago"))
    gate.set()
    deadline = time.monotonic() + 5
    while len(order) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert order == ["served 9 s ago", "served 1 s ago"]
    worker.submit("after", 0.0, record("after"))  # the thread survived the failing job
    deadline = time.monotonic() + 5
    while len(order) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert order[-1] == "after"
