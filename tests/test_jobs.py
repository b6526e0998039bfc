"""knn.live.jobs: a computation the page asked for runs on another thread, reports progress, then its result."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from knn.live.jobs import Job


def test_a_job_reports_progress_then_its_result_or_its_error():
    pool = ThreadPoolExecutor(1, thread_name_prefix="test-jobs")
    halfway, go_on = threading.Event(), threading.Event()

    def work(progress):
        progress(0.5)
        halfway.set()
        go_on.wait(10)
        progress(1.5)  # kept within 0..1
        return threading.current_thread().name

    job = Job(work, pool)
    assert halfway.wait(10) and not job.done and job.fraction == 0.5
    go_on.set()
    assert job.result().startswith("test-jobs") and job.done and job.fraction == 1.0

    def fails(progress):
        raise ValueError("no examples")

    with pytest.raises(ValueError, match="no examples"):
        Job(fails, pool).result()
    pool.shutdown()
