"""bench/fewshot.py's `--capture`: a photo made what a camera of that size delivers, cut for the
model as the live path cuts a frame."""

from __future__ import annotations

import numpy as np

from bench.embedcache import camera_frame, views
from knn.core.images import center_crop_resize, read_image


def test_a_capture_is_the_photo_as_a_camera_of_that_size_delivers_it(rps_dir, grocery):
    # rps photos are 3:2, grocery's square: a 4:3 camera shows a window of each, cropped, not stretched.
    for photo in (sorted(rps_dir.glob("*/*.jpg"))[0], sorted(grocery.glob("*/test_*.jpg"))[0]):
        image = read_image(photo)
        height, width = image.shape[:2]
        side = min(height, width * 3 // 4)  # the 4:3 window's height: the square the model sees
        top, left = (height - side) // 2, (width - side) // 2
        window = center_crop_resize(image[top : top + side, left : left + side], 224).astype(np.int16)
        for capture in ((640, 480), (320, 240)):
            frame = camera_frame(photo, capture)
            assert (frame.width, frame.height, frame.format.name) == (*capture, "yuv420p")
            (square,) = views(photo, "own", 224, capture)
            assert square.shape == (224, 224, 3) and square.dtype == np.uint8
            # Only resampling differs (a stretched grocery photo differs by ~38 levels on average).
            assert np.abs(square - window).mean() < 6, (photo.name, capture)
