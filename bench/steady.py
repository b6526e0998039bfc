"""Where the steady-scene threshold comes from: thumbnail differences under sensor noise and tremor.

    python bench/steady.py            # ~6 min on 2 cores, no browser

The hand-held fake webcam of bench/live.py (harness/webcam.py `handheld`: rock/paper/scissors photos
held 1-3 s, Gaussian sensor noise every frame, a few pixels of tremor, then swept out by the next)
is made at several noise levels, sent through VP8 as a browser would send it (libvpx through
PyAV with aiortc's real-time settings, at two bitrates and two sizes) and decoded. For every
decoded frame the thumbnail of knn.live.steady is compared with the thumbnail of the frame the
model last saw, exactly as `SteadyGate` decides with `STILL_MAD` and `REFRESH_SECONDS`:

- still: frames of one hold against the hold's latest model frame: what noise and tremor give;
- change: the first frame of each sweep against the model frame before it: what a new scene gives;
- photos: every pair of distinct rock/paper/scissors photos (no noise, no codec), same class and not;
- the resulting model passes per second and how many scene changes were caught on their first frame.

It also times `thumbnail()` on one frame of each size.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import markdown_table, shared_path

CAMERAS = ((2.0, 0), (4.0, 0), (8.0, 0), (0.0, 3), (4.0, 3), (8.0, 3), (4.0, 5))
"""(sensor noise σ in grey levels, tremor in pixels): noise alone, then with a holding hand."""
CODINGS = ((640, 480, 150_000), (320, 240, 150_000))
"""(width, height, bit/s): 150 kbit/s is the server's floor under the bandwidth estimate; Chromium
sends 640×480 or scales down to 320×240 when its estimate is low."""


def handheld_photos(count: int = 3) -> list[tuple[str, Path]]:
    """Photos for a hand-held video, (class, file): the gestures in turn, so every change of
    photo changes the class. bench/live.py's video shows three (one per class: a tab taught
    those three names each one surely), the threshold's measurement six."""
    from knn.core.image_folders import class_folders

    files = class_folders(shared_path("data/rps"))
    picks = [("rock", 10), ("paper", 30), ("scissors", 50), ("rock", 70), ("paper", 90), ("scissors", 110)]
    return [(label, files[label][i]) for label, i in picks[:count]]


def photos() -> tuple[list, list[str]]:
    from PIL import Image

    picks = handheld_photos(6)
    return [Image.open(path) for _, path in picks], [label for label, _ in picks]


def vp8_round_trip(frames, width: int, height: int, bitrate: int, fps: int = 30):
    """Decoded frames after a real-time VP8 encode at `bitrate` (aiortc's encoder settings)."""
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt, enc.bit_rate = width, height, "yuv420p", bitrate
    enc.time_base = Fraction(1, fps)
    enc.gop_size, enc.qmin, enc.qmax = 3000, 2, 56
    enc.options = {
        "bufsize": str(bitrate),
        "cpu-used": "-6",
        "deadline": "realtime",
        "lag-in-frames": "0",
        "minrate": str(bitrate),
        "maxrate": str(bitrate),
        "noise-sensitivity": "4",
        "overshoot-pct": "15",
        "partitions": "0",
        "static-thresh": "1",
        "undershoot-pct": "100",
    }
    dec = av.CodecContext.create("libvpx", "r")
    for i, raw in enumerate(frames):
        frame = av.VideoFrame(640, 480, "yuv420p")
        frame.planes[0].update(raw[: 640 * 480])
        frame.planes[1].update(raw[640 * 480 : 640 * 480 * 5 // 4])
        frame.planes[2].update(raw[640 * 480 * 5 // 4 :])
        if (width, height) != (640, 480):
            frame = frame.reformat(width=width, height=height)
        frame.pts, frame.time_base = i, Fraction(1, fps)
        for packet in enc.encode(frame):
            yield from dec.decode(packet)


def gate_run(thumbs: list[np.ndarray], kinds: list[str], fps: int, threshold: float, refresh: float) -> dict:
    """Replay `SteadyGate` over the frames (the model answers at once); collect the differences."""
    from knn.live.steady import ModelAnswer, SteadyGate

    gate = SteadyGate(threshold, refresh)
    still, change, fresh, caught, changes = [], [], 0, 0, 0
    ref = None
    for i, (thumb, kind) in enumerate(zip(thumbs, kinds, strict=True)):
        now = i / fps
        if ref is not None:
            d = float(np.abs(thumb - ref).mean())
            if kind == "hold" and kinds[i - 1] == "hold":
                still.append(d)
            if kind == "move" and kinds[i - 1] == "hold":
                change.append(d)
        if gate.on_arrival(thumb, now) is None:
            fresh += 1
            gate.learn(ModelAnswer(thumb, ("", None, (0, 0, 0)), None, now), gate.generation)
            ref = thumb
            if kind == "move" and kinds[i - 1] == "hold":
                caught += 1
        if kind == "move" and kinds[i - 1] == "hold":
            changes += 1
    return {
        "still": still,
        "change": change,
        "fresh_per_s": fresh / (len(thumbs) / fps),
        "caught": caught,
        "changes": changes,
    }


def photo_pairs() -> tuple[list[float], list[float]]:
    """Thumbnail differences between distinct photos of one class, and of two classes."""
    from PIL import Image

    from harness.webcam import fit
    from knn.core.image_folders import class_folders
    from knn.live.steady import thumbnail

    files = class_folders(shared_path("data/rps"))
    thumbs = []
    for label, paths in files.items():
        for path in paths[::6]:
            rgb = fit(Image.open(path), 640, 480)
            thumbs.append(
                (label, thumbnail(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")))
            )
    same, other = [], []
    for (la, a), (lb, b) in itertools.combinations(thumbs, 2):
        (same if la == lb else other).append(float(np.abs(a - b).mean()))
    return same, other


def thumbnail_cost() -> list[list]:
    from knn.live.steady import thumbnail

    rows = []
    for width, height in ((640, 480), (320, 240)):
        frame = av.VideoFrame.from_ndarray(
            np.random.default_rng(0).integers(0, 256, (height, width, 3), np.uint8), format="rgb24"
        ).reformat(format="yuv420p")
        for _ in range(50):
            thumbnail(frame)
        t0 = time.perf_counter()
        for _ in range(2000):
            thumbnail(frame)
        rows.append([f"{width}×{height}", f"{(time.perf_counter() - t0) / 2000 * 1e6:.0f}"])
    return rows


def main() -> None:
    from harness.webcam import handheld
    from knn.live.steady import REFRESH_SECONDS, STILL_MAD, thumbnail

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threshold", type=float, default=STILL_MAD, help="the still threshold to replay")
    args = parser.parse_args()
    images, labels = photos()
    rows = []
    for noise, tremor in CAMERAS:
        frames, segments = handheld(images, labels, noise=noise, tremor=tremor, seed=1)
        frames = list(frames)
        kinds = [s.kind for s in segments for _ in range(s.end - s.start)]
        for width, height, bitrate in CODINGS:
            thumbs = [thumbnail(f) for f in vp8_round_trip(frames, width, height, bitrate)]
            r = gate_run(thumbs, kinds[: len(thumbs)], 30, args.threshold, REFRESH_SECONDS)
            still, change = np.array(r["still"]), np.array(r["change"])
            rows.append(
                [
                    f"{noise:.0f}",
                    tremor,
                    f"{width}×{height}",
                    f"{np.percentile(still, 50):.2f}",
                    f"{np.percentile(still, 99):.2f}",
                    f"{still.max():.2f}",
                    f"{100 * np.mean(still >= args.threshold):.1f}",
                    f"{change.min():.1f}",
                    f"{np.median(change):.1f}",
                    f"{r['caught']}/{r['changes']}",
                    f"{r['fresh_per_s']:.1f}",
                ]
            )
            print(".", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    print(
        f"Thumbnail differences (mean absolute, grey levels) and the gate at STILL_MAD {args.threshold} "
        f"and {REFRESH_SECONDS} s refresh; hand-held video of {len(images)} photos ({len(kinds)} frames), "
        f"VP8 at {CODINGS[0][2] // 1000} kbit/s\n"
    )
    print(
        markdown_table(
            [
                "noise σ",
                "tremor px",
                "sent as",
                "still p50",
                "still p99",
                "still max",
                f"still % ≥ {args.threshold:g}",
                "change min",
                "change p50",
                "changes caught at once",
                "model passes/s",
            ],
            rows,
        )
    )
    same, other = photo_pairs()
    print("\nDistinct photos (no noise, no codec), pairs of every 6th file\n")
    print(
        markdown_table(
            ["pairs", "count", "min", "p1", "p10", "p50", f"under {args.threshold}"],
            [
                [
                    name,
                    len(v),
                    f"{min(v):.1f}",
                    *(f"{np.percentile(v, q):.1f}" for q in (1, 10, 50)),
                    sum(x < args.threshold for x in v),
                ]
                for name, v in (("same class", same), ("other class", other))
            ],
        )
    )
    print("\nthumbnail() per frame, µs\n")
    print(markdown_table(["frame", "µs"], thumbnail_cost()))


if __name__ == "__main__":
    main()
