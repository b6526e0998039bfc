"""The process's model, built once in a background thread while the page is already drawn.

`model_job()` starts, once per process and backbone setting, a `ModelJob`: it gets the backbone's
weights (a folder, the cache, Keras' download), converts the model to LiteRT (a child process,
knn.model.build) and runs it once; each is a named step whose progress the page reads (`status`).
Sessions hold the job itself as their embedder: it knows `backbone`, `dim` and `input_size` at
once, says whether it is still `loading`, and embeds once it is ready (waiting for it until then).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..model.backbones import DEFAULT_BACKBONE, NATIVE_SIZE, get_backbone
from ..model.child import Progress
from ..model.choice import choose_backbone
from ..model.embedder import Embedder
from ..model.weights import resolve_weights

_LOG = logging.getLogger(__name__)

STEPS = ("Getting the weights", "Converting the model to LiteRT", "Running the model once")
"""The job's steps, in order, as the page names them."""
_SHARES = (0.3, 0.6, 0.1)
"""Each step's share of the progress bar (a download or a conversion takes the time)."""


@dataclass(frozen=True)
class JobStatus:
    """Where the job is: its step (an index in STEPS, len(STEPS) once ready), the progress bar's
    fraction and text, and why it failed, if it did."""

    step: int
    fraction: float
    text: str
    error: str | None = None

    @property
    def ready(self) -> bool:
        return self.step == len(STEPS)

    @property
    def done(self) -> bool:
        """Ready, or failed for good."""
        return self.ready or self.error is not None


class ModelJob:
    """The process's embedder while it is built, then the embedder itself (knn.model.embedder).

    Args:
        backbone: the backbone to build (the server's KNN_BACKBONE); None: the best one this machine
            can get (knn.model.choice), decided by the first step.
        threads: threads per LiteRT invoke (default: one per core).

    `start()` runs the steps in a daemon thread, once; `embed`, `embed_one` and `embedder` wait
    for them to end and raise the step's error if one failed (knn.WeightsUnavailable, BuildError).
    """

    def __init__(self, backbone: str | None = None, threads: int | None = None) -> None:
        self._wanted = backbone
        self._spec = get_backbone(backbone or get_backbone(DEFAULT_BACKBONE).at(NATIVE_SIZE).id)
        self._threads = threads
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._embedder: Embedder | None = None
        self._error: BaseException | None = None
        self._reason = "set by the server's KNN_BACKBONE" if backbone else ""
        self._status = JobStatus(0, 0.0, f"{STEPS[0]}…")

    def start(self) -> ModelJob:
        """Start the build in its thread unless it has started; returns the job."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="knn-model-job", daemon=True)
                self._thread.start()
        return self

    def status(self) -> JobStatus:
        with self._lock:
            return self._status

    @property
    def ready(self) -> bool:
        """The model answers now."""
        return self._embedder is not None

    @property
    def loading(self) -> bool:
        """Still being built: camera frames are captioned "model loading…" (knn.live.pipeline)."""
        return self._embedder is None and self._error is None

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the job ended (ready or failed); False if `timeout` passed first."""
        return self._done.wait(timeout)

    @property
    def embedder(self) -> Embedder:
        """The built embedder, once the job ends (raises the job's error if it failed)."""
        self.start()
        self._done.wait()
        if self._embedder is None:
            raise self._error or RuntimeError("the model job ended without a model")
        return self._embedder

    # ---- what a session asks of its embedder (knn.live.pipeline.EmbedderLike) -------------------

    @property
    def backbone(self) -> str:
        embedder = self._embedder
        return self._spec.id if embedder is None else embedder.backbone

    @property
    def dim(self) -> int:
        embedder = self._embedder
        return self._spec.dim if embedder is None else embedder.dim

    @property
    def input_size(self) -> int:
        embedder = self._embedder
        return self._spec.size if embedder is None else embedder.input_size

    def embed(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        return self.embedder.embed(images)

    def embed_one(self, image: np.ndarray) -> np.ndarray:
        return self.embedder.embed_one(image)

    @property
    def runtime(self) -> str:
        embedder = self._embedder
        return "loading" if embedder is None else embedder.runtime

    @property
    def weights_source(self) -> str:
        embedder = self._embedder
        return "being fetched" if embedder is None else embedder.weights_source

    @property
    def choice_reason(self) -> str:
        """Why this backbone runs, in words ("" until the first step decided it)."""
        return self._reason

    # ---- the job's thread ---------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self._wanted:
                resolve_weights(self._wanted, progress=self._progress(0))
                backbone = self._wanted
            else:
                choice = choose_backbone(progress=self._progress(0))
                backbone, self._reason = choice.backbone, choice.reason
            self._set(1, 0.0, f"{STEPS[1]} (once per server; up to a minute)…")
            embedder = Embedder(backbone, progress=self._progress(1), threads=self._threads)
            self._set(2, 0.0, f"{STEPS[2]}…")
            size = embedder.input_size
            embedder.embed_one(np.zeros((size, size, 3), np.uint8))  # the first invoke sets XNNPACK up
            with self._lock:
                self._embedder = embedder
                self._status = JobStatus(len(STEPS), 1.0, f"The model is ready ({embedder.backbone}).")
        except Exception as exc:  # the page says why; the sessions' embed calls raise it
            _LOG.exception("building the model failed")
            with self._lock:
                self._error = exc
                self._status = JobStatus(self._status.step, self._status.fraction, self._status.text, str(exc))
        finally:
            self._done.set()

    def _set(self, step: int, within: float, text: str) -> None:
        fraction = sum(_SHARES[:step]) + _SHARES[step] * min(max(within, 0.0), 1.0)
        with self._lock:
            self._status = JobStatus(step, fraction, text)

    def _progress(self, step: int) -> Progress:
        def progress(fraction: float, text: str) -> None:
            self._set(step, fraction, f"{STEPS[step]}: {text}")

        return progress


_JOBS: dict[tuple[str | None, int | None], ModelJob] = {}
_JOBS_LOCK = threading.Lock()


def model_job(backbone: str | None = None, threads: int | None = None) -> ModelJob:
    """The process's model job for these settings, started: one build per process, never two at once."""
    with _JOBS_LOCK:
        job = _JOBS.get((backbone, threads))
        if job is None:
            job = _JOBS[(backbone, threads)] = ModelJob(backbone, threads)
    return job.start()
