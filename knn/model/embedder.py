"""Embedder: an RGB image in, a MobileNet embedding out.

Two runtimes give the same embeddings (relative error under 1e-4):

- ``"litert"``: the Keras model converted once to a LiteRT flatbuffer (cached on disk under the
  backbone id and the weights' digest), run by `ai_edge_litert`'s interpreter with XNNPACK and one
  thread per core. Once the weights and the flatbuffer are cached this imports neither TensorFlow nor
  Keras, so the process stays near 80 MB instead of ~760 MB (bench/startup.py); a cold start builds
  them in a child process (`knn.model.build`) that exits.
- ``"tf"``: one `tf.function` with a fixed input signature around the Keras model.

``"auto"`` picks LiteRT when it loads and falls back to TensorFlow otherwise.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..core.images import as_rgb, center_crop_resize
from .backbones import DEFAULT_BACKBONE, BackboneSpec, get_backbone
from .child import BUILD, Progress, run_child
from .choice import choose_backbone
from .weights import ResolvedWeights, cache_dir, resolve_weights

if TYPE_CHECKING:  # Keras only with runtime='tf'
    import keras

RUNTIMES = ("auto", "litert", "tf")


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class _LiteRTRunner:
    """A LiteRT interpreter with a [1, S, S, 3] input; one image per invoke."""

    name = "litert"

    def __init__(self, spec: BackboneSpec, weights: ResolvedWeights, progress: Progress | None, threads: int):
        from ai_edge_litert.interpreter import Interpreter

        self.path = cache_dir() / "litert" / f"{spec.id}-{weights.digest[:16]}.tflite"
        if not self.path.is_file():
            run_child(BUILD, ["litert", spec.id, str(weights.path), str(self.path)], progress)
        self._interpreter = Interpreter(model_path=str(self.path), num_threads=threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        output = self._interpreter.get_output_details()[0]
        self._output = output["index"]
        self.dim = int(output["shape"][-1])
        # An interpreter holds its tensors, so calls take turns; each invoke already uses every
        # core through XNNPACK's threads, so taking turns costs no throughput.
        self._lock = threading.Lock()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = np.empty((len(batch), self.dim), np.float32)
        for i in range(len(batch)):
            with self._lock:
                self._interpreter.set_tensor(self._input, batch[i : i + 1])
                self._interpreter.invoke()
                out[i] = self._interpreter.get_tensor(self._output)[0]
        return out


class _TFRunner:
    """The Keras model behind one traced `tf.function` (re-entrant, so no lock)."""

    name = "tf"

    def __init__(self, spec: BackboneSpec, weights: ResolvedWeights):
        import tensorflow as tf

        self.model = spec.build_keras_model(weights=weights.path)
        self._fn = tf.function(
            lambda x: self.model(x, training=False),
            input_signature=[tf.TensorSpec([None, spec.size, spec.size, 3], tf.float32)],
        )
        self.dim = int(self.model.output_shape[-1])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        embeddings: np.ndarray = self._fn(batch).numpy()
        return embeddings


class Embedder:
    """Embeds RGB images with an ImageNet MobileNet, headless, global-average pooled.

    Args:
        backbone: a backbone id, e.g. ``"mobilenet_v2_1.0_224"``, ``"mobilenet_v2_1.0_320"`` (the
            accurate mode), ``"mobilenet_v1_1.0_224"`` (the model the TF.js webcam demo used). By
            default the best one this machine can get (knn.model.choice; `choice_reason` says
            why).
        weights: an explicit ``*_no_top.weights.h5`` path; by default they are resolved as
            `knn.model.weights` describes (env dir, cache, offline PyPI conversion, Keras download).
        runtime: ``"litert"``, ``"tf"`` or ``"auto"`` (LiteRT when it loads).
        progress: called as ``progress(fraction, text)`` during one-off builds (weight conversion,
            LiteRT conversion), which take seconds to a minute.
        threads: threads per LiteRT invoke (default: one per core).

    Images are centre-cropped to a square, resized to the model's input size and scaled as the
    family's ``preprocess_input`` does. One image (H×W×3, H×W or H×W×4 uint8, any size) or a batch
    (a 4-D array or a list) gives float32 ``[N, dim]``.

    Thread safety: `embed` may be called from many threads at once (browser sessions share one
    embedder). Preprocessing runs in the caller's thread; the LiteRT runtime serialises invokes
    behind one lock, and the TF runtime's `tf.function` is re-entrant.
    """

    def __init__(
        self,
        backbone: str | None = None,
        weights: str | Path | None = None,
        runtime: str = "auto",
        progress: Progress | None = None,
        threads: int | None = None,
    ) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
        if backbone is None and weights is None:
            choice = choose_backbone(progress=progress)
            backbone, self.choice_reason = choice.backbone, choice.reason
        else:
            backbone = backbone or DEFAULT_BACKBONE
            self.choice_reason = "chosen"
        self.spec = get_backbone(backbone)
        self.weights = resolve_weights(backbone, weights, progress)
        self._runner: _LiteRTRunner | _TFRunner
        if runtime == "tf":
            self._runner = _TFRunner(self.spec, self.weights)
        else:
            try:
                self._runner = _LiteRTRunner(self.spec, self.weights, progress, threads or cores())
            except ImportError:
                if runtime == "litert":
                    raise
                self._runner = _TFRunner(self.spec, self.weights)

    @property
    def backbone(self) -> str:
        """The backbone's stable id, stored in project files."""
        return self.spec.id

    @property
    def input_size(self) -> int:
        return self.spec.size

    @property
    def dim(self) -> int:
        """Embedding size."""
        return self._runner.dim

    @property
    def runtime(self) -> str:
        return self._runner.name

    @property
    def weights_source(self) -> str:
        """Where the weights came from, in words (the page shows it)."""
        return self.weights.source

    @property
    def keras_model(self) -> keras.Model:
        """The Keras model (TF runtime only; benchmarks compare against `model.predict`)."""
        if not isinstance(self._runner, _TFRunner):
            raise AttributeError("keras_model exists only with runtime='tf'")
        return self._runner.model

    def preprocess(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Images -> model input, float32 ``[N, S, S, 3]``."""
        batch = _as_image_list(images)
        size = self.spec.size
        square = np.stack([center_crop_resize(as_rgb(im), size) for im in batch])
        return self.spec.preprocess(square)

    def embed_preprocessed(self, batch: np.ndarray) -> np.ndarray:
        """Model input from `preprocess` -> float32 ``[N, dim]``."""
        return self._runner(np.ascontiguousarray(batch, dtype=np.float32))

    def embed(self, images: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """One image or a batch -> float32 ``[N, dim]``."""
        return self.embed_preprocessed(self.preprocess(images))

    def embed_one(self, image: np.ndarray) -> np.ndarray:
        """One image (H×W×3, H×W or H×W×4 uint8) -> its float32 ``[dim]`` embedding."""
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
            raise ValueError(
                f"embed_one takes one image (an H×W×3 array), got {_shape_of(image)}; use embed() for a batch"
            )
        embedding: np.ndarray = self.embed(image)[0]
        return embedding

    def __repr__(self) -> str:
        return f"Embedder(backbone={self.backbone!r}, runtime={self.runtime!r}, dim={self.dim})"


def _shape_of(value: object) -> str:
    return f"an array of shape {value.shape}" if isinstance(value, np.ndarray) else f"a {type(value).__name__}"


def _as_image_list(images: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """2-D and 3-D arrays are one image; 4-D arrays and lists are batches."""
    if isinstance(images, np.ndarray):
        if images.ndim in (2, 3):
            return [images]
        if images.ndim == 4:
            if len(images) == 0:
                raise ValueError("Empty batch: expected at least one image")
            return list(images)
        raise ValueError(f"Expected one image (H×W×3) or a batch (N×H×W×3), got an array of shape {images.shape}")
    images = list(images)
    if not images:
        raise ValueError("Empty batch: expected at least one image")
    return [np.asarray(im) for im in images]
