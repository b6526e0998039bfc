"""Every limit that keeps one input, file or session from taking the server's memory, time or a
user's work, in one place (README's limits table quotes them).

Each is checked before the work or the memory it guards: a project file's members by their zip
and .npy headers before anything is decompressed, an image by its header before its pixels are
decoded, a session's classes and examples before one is added. The limits agree with each other:
a session filled to every limit still saves as a project file under `MAX_PROJECT_BYTES`
(`worst_project_bytes`, tested), so closing the tab never has to lose work the page accepted.
"""

from __future__ import annotations

MAX_CLASSES = 100
"""Classes per session and per project file: the sidebar draws one card per class."""
MAX_EXAMPLES = 5_000
"""Examples per session and per project file, all classes together: each is one stored embedding
and one JPEG, and every camera frame is compared with all of them."""
MAX_EXAMPLES_PER_CLASS = 1_000
"""The default per-class cap (a classifier may set another, up to MAX_EXAMPLES)."""
MAX_VECTORS_PER_EXAMPLE = 12
"""Stored vectors per example: its own embedding and, with augmentation, its views'."""
MAX_STORED_VALUES = 20_000_000
"""Embedding values stored per session and per file, all vectors together (80 MB of float32):
every camera frame is compared with all of them. 5,000 examples of MobileNetV2's 1,280 values
take 6.4 million; augmentation's 12 vectors an example reach the bound at ~1,300 examples."""
MAX_NAME_CHARS = 80
"""Characters in a class name, after normalisation (knn.core.names)."""
MAX_DIM = 2_048
"""Values per embedding; the widest backbone offered (MobileNetV2 α 1.4) makes 1,792."""
STORED_IMAGE_SIZE = 320
"""The side of an example's stored image, whatever input size the model uses: the largest the app
offers (knn.model.backbones.RESOLUTIONS, tested), so any of them can be switched to later and
re-embed from it without upsampling (docs/accuracy.md). Projects stored at 224 px keep theirs."""
MAX_STORED_JPEG_BYTES = 40 * 1024
"""An example's stored image: 28 kB on average at 320 px and quality 90 (grocery's photos);
re-encoded at a lower quality if a busy picture would be larger."""
MAX_META_BYTES = 64 * 1024
"""A project file's JSON settings; a real one is under 1 kB."""
MAX_PROJECT_BYTES = 300 * 1024**2
"""A project file on disk or uploaded: a full session's (`worst_project_bytes`, ~272 MB) fits.
Streamlit's upload limit in .streamlit/config.toml and the ingress's body size agree (tested)."""
MAX_IMAGE_BYTES = 20 * 1024**2
"""An uploaded image file."""
MAX_PIXELS = 25_000_000
"""An image's width × height, read from its header before decoding: a 24-megapixel photo fits."""
MAX_DECODED_BYTES = 100 * 1024**2
"""An image's decoded pixels (width × height × bytes per pixel of its mode): 25 megapixels of RGBA
or 8-bit RGB fit, 16-bit colour of that size does not."""
MAX_CONCURRENT_EXPORTS = 1
"""Model files built at once per server process: each build is a TensorFlow child of ~1 GB."""

_NPY_HEADER = 4096  # an .npy header is padded to a multiple of 64 bytes; never near this


def member_limits() -> dict[str, int]:
    """The most bytes each member of a project file (.npz) can hold when every limit is reached."""
    return {
        "meta.npy": _NPY_HEADER + MAX_META_BYTES,
        "classes.npy": _NPY_HEADER + MAX_CLASSES * MAX_NAME_CHARS * 4,  # UTF-32
        "embeddings.npy": _NPY_HEADER + MAX_STORED_VALUES * 4,
        "vectors.npy": _NPY_HEADER + MAX_EXAMPLES * 8,
        "labels.npy": _NPY_HEADER + MAX_EXAMPLES * 8,
        "image_bytes.npy": _NPY_HEADER + MAX_EXAMPLES * MAX_STORED_JPEG_BYTES,
        "image_offsets.npy": _NPY_HEADER + (MAX_EXAMPLES + 1) * 8,
    }


def worst_project_bytes() -> int:
    """An upper bound on a full session's project file: every member stored uncompressed, plus the
    zip's own headers (deflate never grows data by more than this when it cannot compress it)."""
    members = member_limits()
    raw = sum(members.values())
    return raw + raw // 1000 + 64 * 1024
