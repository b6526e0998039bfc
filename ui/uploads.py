"""Uploads, taken by the page at the start of a run rather than by callbacks (ui.streamlit_fixes
says why): the images uploaded to a class card, and a project file to restore."""

from __future__ import annotations

from collections.abc import Callable

from streamlit.runtime.uploaded_file_manager import UploadedFile

from knn.core.project import load_project, read_project_meta
from knn.live.pipeline import EmbedderLike, model_loading
from knn.model.backbones import get_backbone
from knn.model.child import BuildError
from knn.model.weights import WeightsUnavailable

from .markdown import md
from .messages import begin_action, progress_bar, say, saying_if_saving_stops
from .resources import embedder_for, wait_for_model
from .state import live, ss
from .streamlit_fixes import (
    empty_project_upload,
    empty_upload,
    project_key,
    show_backbone_in_use,
    show_classifier_settings,
    take,
    untaken,
    upload_key,
)


def take_images() -> None:
    """Add the images uploaded to any class card, then give that card a fresh, empty uploader."""
    for label, slot in list(ss.slots.items()):
        files: list[UploadedFile] | None = ss.get(upload_key(slot))
        if not files:
            continue
        session = live()
        # Embedded once the model is there, never dropped; files another run took need no wait.
        if model_loading(session.embedder) and (pending := untaken(files)):
            wait_for_model(f"Adding {len(pending)} image{'s' * (len(pending) != 1)} to “{label}”")
        new = take(files)  # none if another run of the page took them meanwhile
        if new:
            begin_action()
            try:
                with saying_if_saving_stops(slot):
                    ids, errors = session.add_images(label, [(f.name, f.getvalue()) for f in new])
            except ValueError as exc:  # the class went away meanwhile
                ids, errors = [], [str(exc)]
            except (WeightsUnavailable, BuildError) as exc:  # the model could not be built: nothing can embed
                ids, errors = [], [f"the model could not be loaded, so no image can be added ({exc})"]
            if ids:
                say("success", f"Added {len(ids)} image{'s' * (len(ids) != 1)} to “{label}”.", slot)
            for error in errors:
                say("error", f"Refused: {error}", slot)
        empty_upload(slot)


def restore_if_asked() -> None:
    """A project was uploaded: use it with its own backbone if this server has it, else re-embed
    its stored images with the backbone in use. Then a fresh, empty project uploader. It is taken
    once restored or refused: a run stopped meanwhile leaves it to the next run (two runs at once
    restore the same project twice, which leaves the same classes)."""
    upload: UploadedFile | None = ss.get(project_key())
    if upload is None:
        return
    if untaken([upload]):
        begin_action()
        restore_project(upload, lambda: take([upload]))
    empty_project_upload()


def restore_project(upload: UploadedFile, mark_taken: Callable[[], object]) -> None:
    """Restore the uploaded project file, calling `mark_taken` once it is restored or refused,
    before anything else that could stop the run."""
    try:
        data = upload.getvalue()
        backbone = read_project_meta(data)["backbone"]
        get_backbone(backbone)
        classifier = load_project(data)
    except ValueError as exc:  # ProjectFileError, or a backbone this version does not know
        mark_taken()
        say("error", f"Could not restore {upload.name}: {exc}. Your classes are unchanged.")
        return
    name, session, note = upload.name, live(), ""
    embedder: EmbedderLike
    try:
        embedder = embedder_for(backbone)
    except WeightsUnavailable as exc:
        embedder = session.embedder
        note = (
            f" It was made with {backbone}, which this server cannot load ({exc}); its examples were "
            f"re-embedded from their images with {embedder.backbone}."
        )
    with progress_bar(f"Re-embedding the examples of {md(name)}…") as progress:
        try:  # a run stopped meanwhile leaves the classes as they were, and the next run restores
            dropped = session.restore(classifier, backbone, embedder, progress)
            mark_taken()
        except ValueError as exc:
            mark_taken()
            say("error", f"Could not restore {name}: {exc}. Your classes are unchanged.")
            return
    ss.slots = {}  # new classes, new widgets
    show_classifier_settings()
    show_backbone_in_use()
    clf = session.classifier
    say("success", f"Restored {name}: {len(clf.classes)} classes, {len(clf)} examples ({embedder.backbone}).{note}")
    if dropped:
        say("warning", f"{dropped} examples of {name} had no stored image to re-embed and were left out.")
