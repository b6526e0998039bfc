"""Hostile inputs that stay under the size limits: what each costs, in a fresh process.

Each case builds its file in a temporary folder (small on disk, however large it unpacks), then a
child process loads it the way the app does (`load_project` for project files, the upload path
for images) and reports the outcome, the seconds it took and its peak resident memory above the
child's baseline after imports (VmHWM).

    python bench/bombs.py                 # every case
    python bench/bombs.py --case png      # the cases whose name contains "png"
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import ROOT, markdown_table

CHILD = r"""
import json, sys, time
kind, path = sys.argv[1], sys.argv[2]
import numpy as np
from knn.core import images, project

def hwm_kb():  # peak RSS of this address space (ru_maxrss would include the parent's, kept across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

base = hwm_kb()
t0 = time.perf_counter()
try:
    if kind == "project":
        clf = project.load_project(path)
        outcome = f"accepted: {len(clf.classes)} classes, {len(clf)} examples"
    else:
        data = open(path, "rb").read()
        squares = getattr(images, "read_squares", None)  # an upload: the model's square and the stored one
        square = getattr(images, "read_square", None)
        if squares:
            crop = squares(data, 224, 320)[0]
        else:
            crop = square(data, 224) if square else images.center_crop_resize(images.read_image(data), 224)
        outcome = f"accepted: {crop.shape}"
except Exception as exc:
    outcome = f"{type(exc).__name__}: {exc}"
seconds = time.perf_counter() - t0
peak = hwm_kb()
print(json.dumps({"outcome": outcome, "seconds": seconds, "peak_mb": (peak - base) / 1024}))
"""

META = {
    "format": "knn-project",
    "version": 1,
    "backbone": "mobilenet_v1_1.0_224",
    "dim": 1024,
    "k": 3,
    "unknown_threshold": None,
    "max_examples_per_class": 1000,
    "n_examples": 0,
    "n_classes": 1,
}


def _npz(
    path: Path,
    meta: dict | bytes,
    classes: list[str],
    embeddings: np.ndarray,
    labels: np.ndarray,
    images: bytes = b"",
    offsets: np.ndarray | None = None,
) -> Path:
    raw = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    arrays = {
        "meta": np.frombuffer(raw, np.uint8),
        "classes": np.array(classes, dtype=f"<U{max([1, *map(len, classes)])}"),
        "embeddings": embeddings,
        "labels": labels,
        "image_bytes": np.frombuffer(images, np.uint8),
        "image_offsets": np.zeros(len(labels) + 1, np.int64) if offsets is None else offsets,
    }
    np.savez_compressed(path, **arrays)
    return path


def many_examples(folder: Path) -> Path:
    n = 195_000
    row = np.random.default_rng(0).standard_normal(1024).astype(np.float32)
    row /= np.linalg.norm(row)
    return _npz(
        folder / "many.npz",
        {**META, "n_examples": n, "max_examples_per_class": n},
        ["a"],
        np.broadcast_to(row, (n, 1024)).copy(),
        np.zeros(n, np.int32),
    )


def huge_meta(folder: Path) -> Path:
    meta = json.dumps({**META, "pad": "a" * (780 * 1024**2)}).encode()
    return _npz(folder / "meta.npz", meta, ["a"], np.zeros((0, 1024), np.float32), np.zeros(0, np.int32))


def many_classes(folder: Path) -> Path:
    names = [f"class {i}" for i in range(10_000)]
    return _npz(
        folder / "classes.npz",
        {**META, "n_classes": len(names)},
        names,
        np.zeros((0, 1024), np.float32),
        np.zeros(0, np.int32),
    )


def nested_json(folder: Path) -> Path:
    meta = ('{"format": "knn-project", "version": 1, "x": ' + "[" * 100_000 + "]" * 100_000 + "}").encode()
    return _npz(folder / "nested.npz", meta, ["a"], np.zeros((0, 1024), np.float32), np.zeros(0, np.int32))


def surrogate_name(folder: Path) -> Path:
    path = folder / "surrogate.npz"
    _npz(path, META, ["a"], np.zeros((0, 1024), np.float32), np.zeros(0, np.int32))
    # Rewrite the classes member with UTF-32 code unit 0xD800 (a lone surrogate) after "rock".
    header = b"\x93NUMPY\x01\x00" + _header("<U5", (1,))
    body = np.array([ord(c) for c in "rock"] + [0xD800], "<u4").tobytes()
    return _replace_member(path, "classes.npy", header + body)


def above_unicode(folder: Path) -> Path:
    path = folder / "above.npz"
    _npz(path, META, ["a"], np.zeros((0, 1024), np.float32), np.zeros(0, np.int32))
    header = b"\x93NUMPY\x01\x00" + _header("<U1", (1,))
    return _replace_member(path, "classes.npy", header + np.array([0x110000], "<u4").tobytes())


def encrypted_member(folder: Path) -> Path:
    path = folder / "encrypted.npz"
    _npz(path, META, ["a"], np.zeros((0, 1024), np.float32), np.zeros(0, np.int32))
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        local = archive.getinfo("meta.npy").header_offset
    # The "encrypted" flag bit in the first member's local and central headers.
    data[local + 6] |= 1
    central = data.find(b"PK\x01\x02")
    data[central + 8] |= 1
    path.write_bytes(bytes(data))
    return path


def unknown_compression(folder: Path) -> Path:
    path = folder / "method.npz"
    _npz(path, META, ["a"], np.zeros((0, 1024), np.float32), np.zeros(0, np.int32))
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        local = archive.getinfo("meta.npy").header_offset
    central = data.find(b"PK\x01\x02")
    data[local + 8 : local + 10] = (99).to_bytes(2, "little")  # AES, which zipfile cannot read
    data[central + 10 : central + 12] = (99).to_bytes(2, "little")
    path.write_bytes(bytes(data))
    return path


def zip_bomb(folder: Path) -> Path:
    path = folder / "bomb.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ("meta", "classes", "embeddings", "labels", "image_bytes", "image_offsets"):
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                chunk = bytes(1 << 24)
                for _ in range(2 if name != "embeddings" else 128):  # 2 GB of zeros in embeddings
                    member.write(chunk)
    return path


def png(folder: Path, mode: str, size: tuple[int, int] = (8000, 5000)) -> Path:
    from PIL import Image

    path = folder / f"{mode}-{size[0]}.png"
    Image.new(mode, size, (0, 0, 0, 0) if mode == "RGBA" else (0, 0, 0)).save(path, optimize=False)
    return path


def photo(folder: Path) -> Path:
    """A 24-megapixel camera-like JPEG: a real photo scaled up."""
    from PIL import Image

    from bench.common import SHARED

    source = SHARED / "data" / "rps" / "rock" / "rock_000.jpg"
    image = Image.open(source).convert("RGB") if source.is_file() else Image.new("RGB", (300, 200), (90, 140, 60))
    path = folder / "photo.jpg"
    image.resize((6000, 4000), Image.Resampling.BILINEAR).save(path, quality=92)
    return path


def _header(descr: str, shape: tuple) -> bytes:
    text = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    text += b" " * (63 - (len(text) + 10) % 64) + b"\n"
    return len(text).to_bytes(2, "little") + text


def _replace_member(path: Path, name: str, data: bytes) -> Path:
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    members[name] = data
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, content in members.items():
            archive.writestr(member, content)
    return path


CASES = {
    "195,000 identical embeddings": ("project", many_examples),
    "780 MB of JSON metadata": ("project", huge_meta),
    "10,000 classes": ("project", many_classes),
    "deeply nested JSON metadata": ("project", nested_json),
    "a lone-surrogate class name": ("project", surrogate_name),
    "a code point above U+10FFFF": ("project", above_unicode),
    "an encrypted zip member": ("project", encrypted_member),
    "an unknown compression method": ("project", unknown_compression),
    "2 GB zip bomb": ("project", zip_bomb),
    "40-megapixel transparent png": ("image", lambda folder: png(folder, "RGBA")),
    "40-megapixel RGB png": ("image", lambda folder: png(folder, "RGB")),
    "24-megapixel transparent png (under the limits)": ("image", lambda folder: png(folder, "RGBA", (6000, 4000))),
    "24-megapixel JPEG photo (under the limits)": ("image", photo),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", default="", help="run only the cases whose name contains this")
    parser.add_argument("--label", default="", help="a name for this run's JSON file")
    args = parser.parse_args()
    rows, results = [], {}
    with tempfile.TemporaryDirectory(prefix="knn-bombs-") as tmp:
        for name, (kind, make) in CASES.items():
            if args.case.lower() not in name.lower():
                continue
            print(f"{name} …", file=sys.stderr, flush=True)
            path = make(Path(tmp))
            run = subprocess.run(
                [sys.executable, "-c", CHILD, kind, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=600
            )
            try:
                result = json.loads(run.stdout.strip().splitlines()[-1])
            except (IndexError, ValueError):
                result = {
                    "outcome": f"child failed: {run.stderr.strip().splitlines()[-1:]}",
                    "seconds": float("nan"),
                    "peak_mb": float("nan"),
                }
            results[name] = {**result, "file_kb": path.stat().st_size / 1024}
            outcome = result["outcome"]
            rows.append(
                [
                    name,
                    f"{path.stat().st_size / 1024:,.0f}",
                    outcome[:90] + ("…" if len(outcome) > 90 else ""),
                    f"{result['peak_mb']:,.0f}",
                    f"{result['seconds']:.2f}",
                ]
            )
            path.unlink()
    print(markdown_table(["case", "file kB", "outcome", "peak MB above baseline", "seconds"], rows))
    if args.label:
        out = ROOT / "bench" / "results" / f"bombs-{args.label}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1))
        print(f"\n(raw: {out.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
