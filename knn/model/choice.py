"""Which backbone runs: the best one whose weights this machine has or can get, and why.

MobileNetV2 1.0 is the default (faster than v1, and more accurate on look-alike objects;
docs/accuracy.md). Its weights come from an explicit file, `KNN_WEIGHTS_DIR`, the cache or Keras'
download; where none of those works (offline, no file given), MobileNet v1 1.0 runs, converted
from the PyPI graph that requirements.txt installs. The reason is kept for the page and the CLI.
"""

from __future__ import annotations

from dataclasses import dataclass

from .backbones import DEFAULT_BACKBONE, FALLBACK_BACKBONE, NATIVE_SIZE, get_backbone
from .child import Progress
from .weights import WeightsUnavailable, resolve_weights


@dataclass(frozen=True)
class BackboneChoice:
    """The backbone to run (its id, input size included) and, in words, why."""

    backbone: str
    reason: str


def choose_backbone(size: int = NATIVE_SIZE, progress: Progress | None = None) -> BackboneChoice:
    """The default network at `size` if its weights can be had, else the fallback (whose weights
    always can, from PyPI). Getting the weights may convert or download them once, into the cache."""
    preferred = get_backbone(DEFAULT_BACKBONE).at(size)
    try:
        resolve_weights(preferred.id, progress=progress)
    except WeightsUnavailable as exc:
        fallback = get_backbone(FALLBACK_BACKBONE).at(size)
        return BackboneChoice(
            fallback.id,
            f"{preferred.label.split(' · ')[0]} would be the default, but its weights are not on this machine "
            f"({_why(exc)}); {fallback.label.split(' · ')[0]} runs instead, from the PyPI graph",
        )
    return BackboneChoice(
        preferred.id, "the default: faster than v1 and more accurate on look-alike objects (README's few-shot tables)"
    )


def _why(exc: WeightsUnavailable) -> str:
    text = str(exc)
    return (
        text[text.index("How to get it: ") + len("How to get it: ") :].rstrip(".")
        if "How to get it: " in text
        else text
    )
