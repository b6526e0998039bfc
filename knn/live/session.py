"""One browser session: the teaching facade the page calls, and what the camera last showed.

The page makes one `LiveSession` per browser session and wires its camera to
`session.pipeline.sink` / `session.pipeline.output` (knn.live.pipeline). Two threads use it: a
model worker thread calls `accept` with each frame's embedding, and Streamlit's script thread
calls everything else. The session's state sits behind one lock held only for cheap steps (one
KNN query, one add); embedding and JPEG encoding happen outside it. The embedder is shared by all
sessions (it is thread-safe); the examples are this session's alone. A weak registry
(`live_sessions()`) lets the serving process report the sessions still alive.

With a project store (knn.persist), every change is then committed to the session's stored
project by its saver (knn.live.saving), in the order the changes were made: the page's changes
return once committed, Record's frames are committed in the background, and nothing on the
camera's path touches the database. `save_state` says where the work is kept; `project_token`
is the project's private link once its first change is stored; `open_project`, `share` and
`forget` are the rest of what the page needs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import itertools
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import av
import numpy as np

from ..core.classifier import ClassifierError, KNNClassifier, Prediction
from ..core.coach import Hesitation
from ..core.images import ImageError, augmented_views, center_crop_resize, decode_jpeg, encode_jpeg, read_squares
from ..core.inputs import check_flag, check_vote, check_weight
from ..core.limits import MAX_IMAGE_BYTES, STORED_IMAGE_SIZE
from ..core.names import normalise_name
from ..core.rule_trial import RuleTrial, try_rules
from ..core.voting import DEFAULT_CENTRED, DEFAULT_CENTROID_WEIGHT, DEFAULT_VOTE
from ..model.child import Progress
from ..persist import Content, NewExample, ProjectSettings, ProjectStore, StoreError
from .analysis import Analysis
from .overlay import Caption, caption, model_input
from .pipeline import MAX_FRAME_AGE, EmbedderLike, FramePipeline, model_loading
from .recording import Recording
from .saving import OFF, Change, Saver, SaveState
from .stats import StatsSummary
from .worker import MODEL_WORKER, ModelWorker

RECORD_SECONDS = 3.0
"""How long the Record button captures frames by default."""
EMBED_BATCH = 16
"""Images embedded per call when re-embedding or adding uploads: bounds memory, allows progress."""

_SESSIONS: weakref.WeakSet[LiveSession] = weakref.WeakSet()
_SESSION_IDS = itertools.count(1)


def live_sessions() -> list[LiveSession]:
    """The LiveSession objects alive in this process, oldest first."""
    return sorted(list(_SESSIONS), key=lambda s: s.id)


class LiveError(ValueError):
    """A request the session cannot do right now; the message tells the user what to do."""


@dataclass(frozen=True)
class NeighborView:
    """A stored example behind the current prediction, with its thumbnail (JPEG)."""

    example_id: int
    label: str
    similarity: float
    image: bytes | None


@dataclass(frozen=True)
class Snapshot:
    """An immutable copy of a session's state, for the page to draw."""

    classes: tuple[str, ...]
    counts: dict[str, int]
    n_examples: int
    prediction: Prediction | None  # None until a frame has been classified
    neighbors: tuple[NeighborView, ...]
    frame_age: float | None  # seconds since the latest classified frame; None before the first
    recording: tuple[str, float, float] | None  # (class, seconds left, duration) while recording
    stats: StatsSummary
    notice: str | None  # something the video path wants the user to know
    hesitation: tuple[str, str, float] | None  # (best, second, seconds) while the camera wavers between two
    backbone: str
    dim: int
    k: int
    unknown_threshold: float | None
    mirror: bool
    saving: SaveState = OFF  # where the work is kept (knn.live.saving)

    @property
    def camera_live(self) -> bool:
        return self.frame_age is not None and self.frame_age <= MAX_FRAME_AGE


@dataclass(frozen=True)
class Opened:
    """What opening a project's link did: `ok`, the message for the page, whether it was a share
    link (the visitor's own copy is created on their first change), how many examples had no
    image to re-embed with this server's backbone and were left out, and whether the link opens
    nothing for good (`missing`: never was, forgotten or expired; not a database that is away)."""

    ok: bool
    message: str
    shared: bool = False
    dropped: int = 0
    missing: bool = False


@dataclass(frozen=True)
class _Latest:
    embedding: np.ndarray  # [dim] float32
    crop: np.ndarray  # input_size² RGB uint8, what the model saw
    time: float  # the session's clock when it arrived
    embedder: EmbedderLike  # the embedder that made `embedding`
    frame: av.VideoFrame | None  # the camera's frame, for the square Add stores (None: `crop` is stored)


class LiveSession:
    """A browser session's classifier plus what the camera last showed.

    Args:
        embedder: shared, thread-safe; `embed`, `embed_one`, `backbone`, `dim`, `input_size` are used.
        classifier: starts empty when omitted: k=3, no unknown threshold, a new project's rule
            (knn.core.voting: `DEFAULT_VOTE`, `DEFAULT_CENTROID_WEIGHT`, `DEFAULT_CENTRED`).
        classes: classes to create in a new, empty classifier.
        worker: the model worker the camera's frames go through (the process's shared one).
        clock: monotonic seconds for frame times, recordings and ages (tests drive it).
        steady: a still camera frame reuses the last answer (knn.live.steady); False: the model
            sees every frame it can.
        store: the server's project store; None keeps the work in memory only (`KNN_STORE=off`).
            The session starts as a new project, stored from its first change on.
    """

    def __init__(
        self,
        embedder: EmbedderLike,
        classifier: KNNClassifier | None = None,
        classes: Sequence[str] = (),
        worker: ModelWorker = MODEL_WORKER,
        clock: Callable[[], float] = time.monotonic,
        steady: bool = True,
        store: ProjectStore | None = None,
    ) -> None:
        self.id = next(_SESSION_IDS)
        self.created = time.time()
        self._lock = threading.Lock()
        self._embedder = embedder
        if classifier is None:
            classifier = KNNClassifier(
                k=3, vote=DEFAULT_VOTE, centroid_weight=DEFAULT_CENTROID_WEIGHT, centred=DEFAULT_CENTRED
            )
        self._classifier = classifier
        for label in classes:
            self._classifier.add_class(label)
        self._latest: _Latest | None = None
        self._added: tuple[_Latest, str, int] | None = None  # the frame Add stored last, where, as which id
        self._prediction: Prediction | None = None
        self._recording: Recording | None = None
        self._switching = False
        self._notice: str | None = None
        self._hesitation = Hesitation()  # sampled by snapshot(), on the page's thread, not per frame
        self._augment = False  # store each new example with its mirror and crops (12 vectors)
        self._batches: dict[int, int] = {}  # example id -> the Add, upload or Record it came with
        self._next_batch = 0
        self._finishing: tuple[str, float] | None = None  # a recording whose last frames are being committed
        self._seq = 0  # changes made, for the saver
        self._saver: Saver | None = None
        if store is not None:
            content = weakref.WeakMethod(self._content)
            self._saver = Saver(store, lambda: None if (method := content()) is None else method())
            weakref.finalize(self, self._saver.close)
        self._clock = clock
        self.pipeline = FramePipeline(self, worker, clock, steady)
        self.analysis = Analysis()  # leave-one-out of the examples, off the page's thread
        _SESSIONS.add(self)

    # ---- the video path (a model worker thread) ------------------------------------------------

    def frame_embedder(self) -> EmbedderLike | None:
        with self._lock:
            return None if self._switching else self._embedder

    def accept(
        self,
        embedding: np.ndarray,
        crop: np.ndarray,
        arrived: float,
        embedder: EmbedderLike,
        frame: av.VideoFrame | None = None,
    ) -> tuple[Caption, float, str | None] | None:
        """Classify a camera frame's embedding, keep it for Add, record it while recording.

        Only frames the model embedded come here: a still frame that reused an answer is neither
        kept for Add nor recorded (it would be a copy of the frame before it). `frame` is kept
        (not copied) until the next one, so that an Add stores its square at `STORED_IMAGE_SIZE`;
        only Add and Record pay for that square."""
        recording = self._recording  # read unlocked to decide on the JPEG; rechecked below
        jpeg, vectors = None, embedding[None]
        if recording and recording.wants(arrived):
            jpeg = _stored_jpeg(frame, crop)
            vectors = _vectors(embedder, crop, embedding, self.augment)
        with self._lock:
            if embedder is not self._embedder or self._switching:
                return None
            t0 = time.perf_counter()
            prediction = self._classifier.predict(embedding)
            knn_seconds = time.perf_counter() - t0
            self._latest = _Latest(embedding, crop, arrived, embedder, frame)
            self._prediction = prediction
            recording = self._recording
            if recording is not None:
                before = recording.added
                ended = recording.take(self._classifier, vectors, jpeg, arrived)
                if recording.added > before and recording.last_id is not None:
                    self._log_added([recording.last_id], vectors, [jpeg], [len(vectors)], recording.batch, record=True)
                if ended is not None:
                    self._recording = None
                    self._end_recording(recording, ended)
        return caption(prediction), knn_seconds, prediction.label

    def notify(self, text: str) -> None:
        with self._lock:
            self._notice = text

    # ---- adding examples -----------------------------------------------------------------------

    def add_latest(self, label: str) -> int:
        """Add the latest camera frame to class `label`; returns the example id. A frame goes into a
        class once: Add again before the model has seen another frame (a double click) returns
        the example it made."""
        with self._lock:
            self._check_class(label)
            latest = self._fresh_latest("Add")
            done = self._added
            if done and done[0] is latest and self._classifier.label_of(done[2]) == done[1] == label:
                return done[2]
        jpeg = _stored_jpeg(latest.frame, latest.crop)
        vectors = _vectors(latest.embedder, latest.crop, latest.embedding, self.augment)
        with self._lock:
            if latest.embedder is not self._embedder:
                raise LiveError("The backbone changed while adding: press Add again.")
            self._check_class(label)
            (example_id,) = self._classifier.add_many(vectors, [label], [jpeg], [len(vectors)])
            self._added = (latest, label, example_id)
            change = self._log_added([example_id], vectors, [jpeg], [len(vectors)], self._new_batch())
            self._repredict()
            self._hesitation.reset()
        self._wait(change)
        return example_id

    def start_recording(self, label: str, seconds: float = RECORD_SECONDS) -> None:
        """Add every processed frame to `label` for the next `seconds`."""
        if not seconds > 0:
            raise LiveError(f"Recording needs a positive duration, got {seconds}")
        with self._lock:
            self._check_class(label)
            self._fresh_latest("Record")
            self._recording = Recording(label, self._clock() + seconds, seconds, batch=self._new_batch())
            self._notice = None
            self._finishing = None

    def stop_recording(self) -> None:
        with self._lock:
            self._recording = None

    def add_images(
        self, label: str, files: Iterable[tuple[str, bytes]], progress: Progress | None = None
    ) -> tuple[list[int], list[str]]:
        """Add uploaded image files to `label`.

        Returns the new example ids and one message per refused file (not an image, damaged,
        or too large); the other files are still added.
        """
        with self._lock:
            self._check_class(label)
            embedder = self._embedder
        crops, jpegs, errors = _read_uploads(files, embedder.input_size)
        if not crops:
            return [], errors
        embeddings, counts = _embed_examples(
            embedder, crops, [self.augment] * len(crops), progress, "Embedding uploaded images"
        )
        with self._lock:
            if embedder is not self._embedder:
                raise LiveError("The backbone changed while adding the images: upload them again.")
            self._check_class(label)
            ids = self._classifier.add_many(embeddings, [label] * len(crops), jpegs, counts)
            change = self._log_added(ids, embeddings, jpegs, counts, self._new_batch())
            self._repredict()
        self._wait(change)
        return ids, errors

    # ---- classes and settings ------------------------------------------------------------------

    @contextmanager
    def _editing(self) -> Iterator[KNNClassifier]:
        """The classifier under the lock; the latest frame is classified again after the edit."""
        with self._lock:
            yield self._classifier
            self._repredict()

    def add_class(self, label: str) -> str:
        """Add a class; returns its name as stored (knn.core.names)."""
        with self._editing() as clf:
            name = clf.add_class(label)
            change = self._log("add_class", name)
        self._wait(change)
        return name

    def rename_class(self, old: str, new: str) -> str:
        """Rename a class; returns its new name as stored."""
        with self._editing() as clf:
            name = clf.rename_class(old, new)
            if self._recording is not None and self._recording.label == old:
                self._recording.label = name
            change = self._log("rename_class", normalise_name(old), name)
        self._wait(change)
        return name

    def remove_class(self, label: str) -> None:
        with self._editing() as clf:
            self._stop_recording_into(label)  # adding to a missing class would quietly create it again
            name, ids = self._class_and_ids(label)
            clf.remove_class(label)
            change = self._log("remove_class", name, ids)
        self._wait(change)

    def clear_class(self, label: str) -> None:
        with self._editing() as clf:
            self._stop_recording_into(label)
            name, ids = self._class_and_ids(label)
            clf.clear_class(label)
            change = self._log("clear_class", name, ids)
        self._wait(change)

    def remove_example(self, example_id: int) -> None:
        with self._editing() as clf:
            clf.remove(example_id)
            self._batches.pop(example_id, None)
            change = self._log("remove_example", int(example_id))
        self._wait(change)

    def move_example(self, example_id: int, label: str) -> None:
        """Move one example (all its vectors) to class `label`, which must exist."""
        with self._editing() as clf:
            self._check_class(label)
            clf.move(example_id, label)
            change = self._log("move_example", int(example_id), clf.label_of(example_id))
        self._wait(change)

    def set_k(self, k: int) -> None:
        with self._editing() as clf:
            clf.k = k
            change = self._log_settings()
        self._wait(change)

    def set_unknown_threshold(self, threshold: float | None) -> None:
        with self._editing() as clf:
            clf.unknown_threshold = threshold
            change = self._log_settings()
        self._wait(change)

    def set_mirror(self, mirror: bool) -> None:
        with self._lock:
            self.pipeline.mirror = bool(mirror)
            change = self._log_settings()
        self._wait(change)

    def set_rule(self, vote: str, centroid_weight: float, centred: bool) -> None:
        """Use another vote rule (knn.core.voting) and centring; refused (ClassifierError) before
        anything changes when one of them is not valid. Saved as a settings change."""
        vote, centroid_weight, centred = check_vote(vote), check_weight(centroid_weight), check_flag(centred)
        with self._editing() as clf:
            clf.vote, clf.centroid_weight, clf.centred = vote, centroid_weight, centred
            change = self._log_settings()
        self._wait(change)

    def try_rules(self, progress: Callable[[float], None] | None = None) -> RuleTrial:
        """The current rule against the other candidates on the examples as they are now, leaving
        out one batch at a time (knn.core.rule_trial). Slow with many examples: call it off the
        page's thread. Changes nothing."""
        with self._lock:
            state = self._classifier.state()
            ids = state.ids if state.ids is not None else ()  # a live classifier's state always has its ids
            groups = [self._batches.get(int(i), -1 - int(i)) for i in ids]  # no batch known: its own group
        return try_rules(state, groups, progress=progress)

    @property
    def augment(self) -> bool:
        """Whether new examples are stored with their mirror's and crops' vectors too (12 in all)."""
        return self._augment

    @augment.setter
    def augment(self, value: bool) -> None:
        with self._lock:
            self._augment = bool(value)
            change = self._log_settings()
        self._wait(change)

    def restore(
        self, classifier: KNNClassifier, backbone: str, embedder: EmbedderLike, progress: Progress | None = None
    ) -> int:
        """Use a restored project's `classifier`, made with `backbone`, with `embedder` from now
        on: as it is when `embedder` is that backbone, else re-embedded from its stored images
        (another input size counts as another backbone). Returns how many examples had no image
        to re-embed and were left out. The stored project is replaced by it, in one transaction."""
        classifier, dropped = self._fitted(classifier, backbone, embedder, progress)
        with self._lock:
            self._use(classifier, embedder)
            self._batches = {}
            for example_id in classifier.embeddings()[2]:
                self._batches[example_id] = self._new_batch()  # a file does not say what came together
            change = self._log("replace")
        self._wait(change)
        return dropped

    def _fitted(
        self, classifier: KNNClassifier, backbone: str, embedder: EmbedderLike, progress: Progress | None
    ) -> tuple[KNNClassifier, int]:
        """`classifier` as `embedder` needs it: re-embedded when `backbone` is another."""
        if backbone != embedder.backbone:
            classifier, dropped, _ = _re_embedded(classifier, embedder, progress)
            return classifier, dropped
        if classifier.dim is not None and classifier.dim != embedder.dim:
            raise LiveError(
                f"These examples have {classifier.dim}-dimensional embeddings; "
                f"{backbone} makes {embedder.dim}-dimensional ones."
            )
        return classifier, 0

    def _use(self, classifier: KNNClassifier, embedder: EmbedderLike) -> None:
        """Swap in another project's classifier (lock held)."""
        self._classifier = classifier
        self._recording = None
        self._finishing = None
        self._added = None
        self._hesitation.reset()  # it named the old project's classes
        if embedder is not self._embedder:
            self._embedder, self._latest = embedder, None
            self.pipeline.reset_timings()
        self._repredict()

    def set_embedder(self, embedder: EmbedderLike, progress: Progress | None = None) -> int:
        """Switch backbone: re-embed every stored example from its stored image.

        Examples stored without an image cannot be re-embedded and are dropped; returns how many.
        While this runs camera frames pass through captioned, unclassified. Call it from the page
        thread (the only thread that edits examples), so nothing is added meanwhile.
        """
        with self._lock:
            if embedder is self._embedder:
                return 0
            self._switching = True
            self._recording = None
            old = self._classifier
            self.pipeline.forget_answer()  # still frames must not keep the old backbone's answer
        try:
            new, dropped, kept = _re_embedded(old, embedder, progress)
        except BaseException:
            with self._lock:
                self._switching = False
            raise
        with self._lock:
            self._classifier = new
            self._embedder = embedder
            self._latest = None
            self._prediction = None
            self._switching = False
            self.pipeline.forget_answer()
            new_ids = new.embeddings()[2]
            self._batches = {n: self._batches.get(o, o) for o, n in zip(kept, new_ids, strict=True)}
            if self._saver is not None:
                content = self._content_locked()
                change = self._log(
                    "reembed", list(zip(kept, new_ids, strict=True)), content.examples(), content.settings
                )
            else:
                change = None
        self.pipeline.reset_timings()
        self._wait(change)
        return dropped

    # ---- reading -------------------------------------------------------------------------------

    @property
    def classifier(self) -> KNNClassifier:
        """The current classifier, for reads (it is thread-safe itself); edit through methods here."""
        return self._classifier

    @property
    def embedder(self) -> EmbedderLike:
        return self._embedder

    @property
    def mirror(self) -> bool:
        return self.pipeline.mirror

    def snapshot(self, neighbors: bool = True) -> Snapshot:
        """A consistent copy of the state, taken under the lock, for the page to draw (without the
        nearest examples' thumbnails when `neighbors` is false). A recording whose camera stopped
        before its deadline ends here (its last frames committed, then its notice)."""
        now = self._clock()
        with self._lock:
            clf = self._classifier
            rec = self._recording
            if rec is not None and rec.overdue(now):  # the camera stopped before its deadline: the clock ends it
                self._recording = None
                self._end_recording(rec, rec.finished())
                rec = None
            recording = (rec.label, rec.deadline - now, rec.seconds) if rec and now < rec.deadline else None
            if recording is None and self._finishing is not None:  # its last frames are being committed
                recording = (self._finishing[0], 0.0, self._finishing[1])
            counts = clf.counts()
            frame_age = None if self._latest is None else now - self._latest.time
            prediction = self._prediction
            live = frame_age is not None and frame_age <= MAX_FRAME_AGE
            if prediction is not None and prediction.label is not None and live:
                hesitation = self._hesitation.update(prediction.confidences, now)
            else:
                hesitation = self._hesitation.update(None, now)
            snap = Snapshot(
                classes=tuple(clf.classes),
                counts=counts,
                n_examples=sum(counts.values()),
                prediction=self._prediction,
                neighbors=(),
                frame_age=frame_age,
                recording=recording,
                stats=self.pipeline.summary(now),
                notice=self._notice,
                hesitation=hesitation,
                backbone=self._embedder.backbone,
                dim=self._embedder.dim,
                k=clf.k,
                unknown_threshold=clf.unknown_threshold,
                mirror=self.pipeline.mirror,
                saving=self.save_state,
            )
        if not neighbors:
            return snap
        # Thumbnails are looked up outside the lock: the classifier has its own.
        return dataclasses.replace(snap, neighbors=_neighbor_views(clf, snap.prediction))

    # ---- the stored project ----------------------------------------------------------------------

    @property
    def save_state(self) -> SaveState:
        """Where this session's work is kept, for the page to say (knn.live.saving.SaveState)."""
        return OFF if self._saver is None else self._saver.state

    @property
    def project_token(self) -> str | None:
        """The project's private token once its first change is stored (for the page's URL)."""
        return None if self._saver is None else self._saver.token

    def flush(self, timeout: float = 15.0) -> bool:
        """Wait until every change made so far is committed (or failed); False on timeout."""
        with self._lock:
            seq = self._seq
        return self._saver is None or self._saver.wait(seq, timeout)

    def open_project(
        self,
        token: str,
        embedder_for: Callable[[str], EmbedderLike] | None = None,
        progress: Progress | None = None,
    ) -> Opened:
        """Open the project (or share link) behind `token` in this session, replacing its work.

        A project comes back with its own backbone when `embedder_for(backbone)` gives it, else
        re-embedded from its stored images with the backbone in use; this session then edits it
        (any other tab on it stops editing). A share link gives its content as a new project,
        stored from the first change on, never the original. Never raises: `Opened.message`
        says what happened.
        """
        if self._saver is None:
            return Opened(False, "Projects are not saved on this server, so a project link cannot be opened.")
        try:
            loaded = self._saver.store.open(token)
        except StoreError as exc:
            return Opened(False, f"This project could not be opened: {exc}.")
        if loaded is None:
            days = self._saver.store.ttl / 86_400
            return Opened(
                False,
                f"There is no project at this link: it was forgotten, or not opened for {days:g} days.",
                missing=True,
            )
        settings, embedder, note = loaded.settings, self._embedder, ""
        if embedder_for is not None and settings.backbone != embedder.backbone:
            try:
                embedder = embedder_for(settings.backbone)
            except Exception as exc:  # unknown backbone, weights this server cannot have, ...
                note = (
                    f" It was made with {settings.backbone}, which this server cannot load ({exc}); "
                    f"its examples were re-embedded with {embedder.backbone}."
                )
        try:
            classifier, dropped = self._fitted(loaded.classifier, settings.backbone, embedder, progress)
        except (LiveError, ClassifierError, ImageError) as exc:
            return Opened(False, f"This project could not be opened: {exc}")
        re_embedded = embedder.backbone != settings.backbone
        with self._lock:
            self._use(classifier, embedder)
            self._augment = settings.augment
            self.pipeline.mirror = settings.mirror
            if re_embedded:
                self._batches = {}
                for example_id in classifier.embeddings()[2]:
                    self._batches[example_id] = self._new_batch()
            else:
                self._batches = dict(enumerate(loaded.batches))
                self._next_batch = max(loaded.batches, default=-1) + 1
            # A share link's copy, or vectors of another backbone: the first change writes it all.
            change = self._log("attach", loaded.writer, loaded.shared or re_embedded)
        self._wait(change)
        what = "a copy of a shared project" if loaded.shared else "the project"
        n_classes, n_examples = len(classifier.classes), len(classifier)
        counts = f"{n_classes} class{'es' * (n_classes != 1)}, {n_examples} example{'s' * (n_examples != 1)}"
        return Opened(True, f"Opened {what}: {counts} ({embedder.backbone}).{note}", loaded.shared, dropped)

    def share(self) -> str:
        """A new share link's token: a read-only snapshot of the project as it is now. Whoever
        opens it gets a project of their own copied from it; nothing leads back to this one."""
        if self._saver is None:
            raise LiveError("Share links need projects saved on this server, and saving is off here.")
        with self._lock:
            content = self._content_locked()
        try:
            return self._saver.store.share(content)
        except StoreError as exc:
            raise LiveError(f"Could not make a share link: {exc}.") from None

    def forget(self, classes: Sequence[str] = ()) -> None:
        """Delete the stored project now, then start a new, empty one in memory with `classes`
        (stored from its first change, under a new link). A tab still open on the forgotten
        project cannot bring it back.

        Raises:
            LiveError: the store could not delete it now (nothing was changed).
        """
        with self._lock:
            self._recording = self._finishing = None
            change = self._log("forget")
        self._wait(change)
        if change is not None and change.error:
            raise LiveError(f"Could not forget this project: {change.error}. Try again.")
        fresh = _empty_like(self._classifier)  # the new project keeps the settings and the rule
        for label in classes:
            fresh.add_class(label)
        with self._lock:
            self._use(fresh, self._embedder)
            self._batches = {}

    def batches(self) -> dict[int, int]:
        """Each example's batch: examples added by one Add, one upload or one Record share it."""
        with self._lock:
            return dict(self._batches)

    def take_notice(self) -> str | None:
        """The video path's latest notice, once."""
        with self._lock:
            notice, self._notice = self._notice, None
            return notice

    # ---- internals (lock held) -----------------------------------------------------------------

    def _log(self, method: str | None, *args, record: bool = False, done=None) -> Change | None:
        """Hand a change just made in memory to the saver (None without a store)."""
        if self._saver is None:
            return None
        self._seq += 1
        change = Change(self._seq, method, args, record=record, done=done)
        self._saver.submit(change)
        return change

    def _log_added(
        self,
        ids: Sequence[int],
        vectors: np.ndarray,
        jpegs: Sequence[bytes | None],
        counts: Sequence[int],
        batch: int,
        record: bool = False,
    ) -> Change | None:
        for example_id in ids:
            self._batches[example_id] = batch
        if self._saver is None:
            return None
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        labels = [self._classifier.label_of(example_id) for example_id in ids]
        new = [
            NewExample(example_id, label, vectors[starts[i] : starts[i + 1]], jpeg, batch)
            for i, (example_id, label, jpeg) in enumerate(zip(ids, labels, jpegs, strict=True))
            if label is not None  # just added under the same lock: always there
        ]
        return self._log("add", new, record=record)

    def _log_settings(self) -> Change | None:
        return None if self._saver is None else self._log("set_settings", self._settings_locked())

    def _wait(self, change: Change | None) -> None:
        """Outside the lock: wait for a page change's commit."""
        if change is not None and self._saver is not None:
            self._saver.wait(change.seq)

    def _new_batch(self) -> int:
        self._next_batch += 1
        return self._next_batch - 1

    def _settings_locked(self) -> ProjectSettings:
        clf = self._classifier
        return ProjectSettings(
            backbone=self._embedder.backbone,
            k=clf.k,
            unknown_threshold=clf.unknown_threshold,
            max_examples_per_class=clf.max_examples_per_class,
            augment=self._augment,
            mirror=bool(self.pipeline.mirror),
            vote=clf.vote,
            centroid_weight=clf.centroid_weight,
            centred=clf.centred,
        )

    def _content_locked(self) -> Content:
        state = self._classifier.state()
        ids = state.ids if state.ids is not None else ()  # a live classifier's state always has its ids
        batches = [self._batches.get(int(i), int(i)) for i in ids]
        return Content(state, self._settings_locked(), batches)

    def _content(self) -> tuple[int, Content]:
        """The whole project and its last change's number, for the saver."""
        with self._lock:
            return self._seq, self._content_locked()

    def _class_and_ids(self, label: str) -> tuple[str, list[int]]:
        self._check_class(label)
        name = normalise_name(label)
        return name, [e.example_id for e in self._classifier.examples(name)]

    def _end_recording(self, recording: Recording, notice: str) -> None:
        """The recording's notice, once its last frames are committed."""
        if self._saver is None:
            self._notice = notice
            return
        self._finishing = (recording.label, recording.seconds)
        self._log(None, done=lambda: self._recorded(notice))

    def _recorded(self, notice: str) -> None:
        with self._lock:
            self._notice, self._finishing = notice, None

    def _check_class(self, label: str) -> None:
        if not self._classifier.has_class(label):
            raise LiveError(f"There is no class “{label}” (it may have been renamed or deleted).")

    def _stop_recording_into(self, label: str) -> None:
        if self._recording is not None and self._recording.label == label:
            self._recording = None

    def _fresh_latest(self, action: str) -> _Latest:
        latest = self._latest
        if latest is None and model_loading(self._embedder):
            raise LiveError(
                f"The model is still loading (the bar under the camera shows how far): {action} works once "
                "the camera's video shows a prediction."
            )
        if latest is None:
            raise LiveError(f"No camera frame yet: press START on the camera (and allow camera access), then {action}.")
        if self._clock() - latest.time > MAX_FRAME_AGE:
            raise LiveError(f"The camera is not sending frames (is it stopped?): press START, then {action}.")
        if latest.embedder is not self._embedder:
            raise LiveError(f"The backbone just changed: wait for the next frame, then {action}.")
        return latest

    def _repredict(self) -> None:
        """Classify the latest frame again, so the page never shows a class that is gone, and
        have the next camera frame classified anew, so the video's caption follows too."""
        self.pipeline.forget_answer()
        if self._latest is not None and self._latest.embedder is self._embedder:
            self._prediction = self._classifier.predict(self._latest.embedding)
        else:
            self._prediction = None


# ---- helpers ----------------------------------------------------------------------------------


class _NamedBytes(io.BytesIO):
    """An uploaded file's bytes; PIL quotes repr(file) in its errors, so make that the file name."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self.name = name

    def __repr__(self) -> str:
        return repr(self.name)


def _read_uploads(files: Iterable[tuple[str, bytes]], size: int) -> tuple[list[np.ndarray], list[bytes], list[str]]:
    """Each readable file's centre square at `size` and its stored JPEG (the same square at
    `STORED_IMAGE_SIZE`), and one message per refused file."""
    crops: list[np.ndarray] = []
    jpegs: list[bytes] = []
    errors: list[str] = []
    for name, data in files:
        if len(data) > MAX_IMAGE_BYTES:
            errors.append(
                f"{name} is {len(data) / 1024**2:.2g} MB; the limit is {MAX_IMAGE_BYTES / 1024**2:.2g} MB per image"
            )
            continue
        try:
            crop, stored = read_squares(_NamedBytes(data, name), size, STORED_IMAGE_SIZE)
        except ImageError as exc:
            errors.append(str(exc))
            continue
        crops.append(crop)
        jpegs.append(encode_jpeg(stored))
    return crops, jpegs, errors


def _stored_jpeg(frame: av.VideoFrame | None, crop: np.ndarray) -> bytes:
    """What a project stores of a camera frame: the centre square the model saw, cut from the
    frame as the model's input is (knn.live.overlay.model_input) at `STORED_IMAGE_SIZE`, or at
    the frame's shorter side if that is less (never below the model's input size: a small frame
    is stored as the model saw it); the model's input itself where there is no frame."""
    side = crop.shape[0]
    if frame is not None and min(STORED_IMAGE_SIZE, frame.width, frame.height) > side:
        side = min(STORED_IMAGE_SIZE, frame.width, frame.height)
        crop = model_input(frame, side)
    return encode_jpeg(crop, size=side)


def _embed_in_batches(
    embedder: EmbedderLike, images: Sequence[np.ndarray], progress: Progress | None, what: str
) -> np.ndarray:
    parts = []
    for start in range(0, len(images), EMBED_BATCH):
        parts.append(np.asarray(embedder.embed(list(images[start : start + EMBED_BATCH])), np.float32))
        if progress is not None:
            done = min(start + EMBED_BATCH, len(images))
            progress(done / len(images), f"{what}: {done} of {len(images)}")
    return np.concatenate(parts)


def _vectors(embedder: EmbedderLike, crop: np.ndarray, embedding: np.ndarray, augment: bool) -> np.ndarray:
    """An example's vectors [V, D]: its embedding, and with augmentation its views' (V = 12)."""
    if not augment:
        return embedding[None]
    return np.vstack([embedding, np.asarray(embedder.embed(augmented_views(crop)), np.float32)])


def _embed_examples(
    embedder: EmbedderLike, squares: Sequence[np.ndarray], augment: Sequence[bool], progress: Progress | None, what: str
) -> tuple[np.ndarray, list[int]]:
    """Every example's vectors one after the other, and how many each has (12 where augmented)."""
    images, counts = [], []
    for square, views in zip(squares, augment, strict=True):
        batch = [square, *augmented_views(square)] if views else [square]
        images += batch
        counts.append(len(batch))
    return _embed_in_batches(embedder, images, progress, what), counts


def _re_embedded(
    old: KNNClassifier, embedder: EmbedderLike, progress: Progress | None
) -> tuple[KNNClassifier, int, list[int]]:
    """A classifier like `old` with every example that has an image embedded by `embedder` (with
    its views again where it had them); how many examples had no image; the ids in `old` of the
    examples kept, in the new classifier's order."""
    examples = old.examples()
    usable = [(e, e.image) for e in examples if e.image is not None]
    new = _empty_like(old)
    for label in old.classes:
        new.add_class(label)
    if usable:
        squares = [center_crop_resize(decode_jpeg(jpeg), embedder.input_size) for _, jpeg in usable]
        embeddings, counts = _embed_examples(
            embedder, squares, [e.vectors > 1 for e, _ in usable], progress, "Re-embedding examples"
        )
        new.add_many(embeddings, [e.label for e, _ in usable], [jpeg for _, jpeg in usable], counts)
    return new, len(examples) - len(usable), [e.example_id for e, _ in usable]


def _empty_like(old: KNNClassifier) -> KNNClassifier:
    """A classifier without classes or examples, with `old`'s settings and rule."""
    return KNNClassifier(
        k=old.k,
        unknown_threshold=old.unknown_threshold,
        max_examples_per_class=old.max_examples_per_class,
        vote=old.vote,
        centroid_weight=old.centroid_weight,
        centred=old.centred,
    )


def _neighbor_views(clf: KNNClassifier, prediction: Prediction | None) -> tuple[NeighborView, ...]:
    if prediction is None or not prediction.neighbors:
        return ()
    images: dict[int, bytes | None] = {}
    for label in {n.label for n in prediction.neighbors}:
        with contextlib.suppress(ClassifierError):  # the class went away since the prediction
            images.update((e.example_id, e.image) for e in clf.examples(label))
    return tuple(
        NeighborView(n.example_id, n.label, n.similarity, images.get(n.example_id))
        for n in prediction.neighbors
        if n.example_id in images
    )
