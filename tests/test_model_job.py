"""The process's model job (knn.serving.model_job): known before it is built, built once however
many sessions ask at once, the real embedder once ready, and a failure said, not raised in the page."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import knn
from knn.serving import model_job as jobs
from knn.serving.model_job import STEPS, ModelJob, model_job


def test_a_job_knows_its_backbone_before_it_is_built():
    job = ModelJob("mobilenet_v2_1.0_224")  # not started
    assert (job.backbone, job.dim, job.input_size) == ("mobilenet_v2_1.0_224", 1280, 224)
    assert job.loading and not job.ready and not job.wait(0)
    status = job.status()
    assert status.step == 0 and status.fraction == 0.0 and not status.done
    assert job.runtime == "loading"


def test_many_sessions_at_once_start_one_build(models_dir, monkeypatch):
    built = []

    class Counted(knn.Embedder):  # the real embedder, counted
        def __init__(self, *args, **kwargs):
            built.append(args)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(jobs, "Embedder", Counted)
    threads = 1  # a key no other test uses: a fresh job
    asked: list[ModelJob] = []
    callers = [threading.Thread(target=lambda: asked.append(model_job(None, threads))) for _ in range(8)]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    job = asked[0]
    assert all(a is job for a in asked)
    assert job.wait(300) and job.ready, job.status()
    assert len(built) == 1
    status = job.status()
    assert status.step == len(STEPS) and status.fraction == 1.0 and status.done
    # Now it is the real model: the same embeddings as an embedder of that backbone.
    assert job.backbone == "mobilenet_v2_1.0_224" and "default" in job.choice_reason
    image = np.random.default_rng(0).integers(0, 255, (240, 320, 3), np.uint8)
    reference = knn.Embedder(job.backbone).embed_one(image)
    np.testing.assert_allclose(job.embed_one(image), reference, rtol=1e-4, atol=1e-5)
    assert job.runtime == "litert" and not job.loading


def test_a_backbone_this_machine_cannot_get_says_why(tmp_path, monkeypatch):
    monkeypatch.setenv("KNN_CACHE", str(tmp_path))  # empty, and KNN_OFFLINE is set (tests/conftest.py)
    job = ModelJob("mobilenet_v2_0.35_224").start()
    assert job.wait(120)
    assert not job.ready and not job.loading
    assert "No weights for this backbone" in (job.status().error or "")
    with pytest.raises(knn.WeightsUnavailable):
        job.embed_one(np.zeros((224, 224, 3), np.uint8))
