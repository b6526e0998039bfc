"""Rolling timings and frame rates for the live panel."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from knn.live.stats import CaptureClock, RateMeter, Ring, Stats


def test_ring_percentiles_match_numpy_over_the_last_values_only():
    ring = Ring(size=100)
    assert all(math.isnan(v) for v in ring.percentiles(50, 95))
    values = np.arange(250, dtype=float)
    for v in values:
        ring.record(v)
    assert len(ring) == 100
    kept = values[-100:]  # the oldest 150 were overwritten
    assert ring.percentiles(50, 95) == pytest.approx(tuple(np.percentile(kept, [50, 95])))
    ring.clear()
    assert len(ring) == 0


def test_ring_rejects_zero_size():
    with pytest.raises(ValueError, match="at least 1"):
        Ring(0)


def test_rate_meter_reads_a_steady_30_fps():
    meter = RateMeter(window=2.0)
    t = 100.0
    assert meter.rate(t) == 0.0
    for _ in range(300):  # 10 s at 30 fps
        t += 1 / 30
        meter.tick(t)
    assert meter.rate(t) == pytest.approx(30, rel=0.05)
    # Early on (half a second in) the rate is not diluted by the unfilled window.
    early = RateMeter(window=2.0)
    for i in range(15):
        early.tick(i / 30)
    assert early.rate(14 / 30) == pytest.approx(30, rel=0.1)
    # The camera stops: the rate falls to zero once the window has passed.
    assert meter.rate(t + 2.5) == 0.0


def test_stats_counts_and_summary():
    stats = Stats(size=64)
    t = 0.0
    for i in range(90):  # 3 s of a 30 fps camera; every third frame processed, two dropped
        t += 1 / 30
        stats.record_received(now=t)
        if i % 3 == 2:
            stats.record_dropped(2)
            stats.record_processed(0.020 + 0.001 * (i % 2), 0.0005, now=t)
    s = stats.summary(now=t)
    assert (s.frames_received, s.frames_processed, s.frames_dropped) == (90, 30, 60)
    assert s.received_fps == pytest.approx(30, rel=0.1)
    assert s.processed_fps == pytest.approx(10, rel=0.15)
    assert 20.0 <= s.embed_ms_p50 <= s.embed_ms_p95 <= 21.0
    assert s.knn_ms_p50 == pytest.approx(0.5)
    stats.reset_timings()
    assert math.isnan(stats.summary(now=t).embed_ms_p50)


def test_recording_does_not_grow_memory():
    stats = Stats(size=256)
    for i in range(300):  # fill the rings first
        stats.record_received(now=i / 30)
        stats.record_processed(0.02, 0.001, now=i / 30)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for i in range(300, 3300):
        stats.record_received(now=i / 30)
        stats.record_processed(0.02, 0.001, now=i / 30)
    grown = sum(d.size_diff for d in tracemalloc.take_snapshot().compare_to(before, "filename"))
    tracemalloc.stop()
    assert grown < 20_000  # 3000 frames; a per-frame allocation that was kept would show here


def test_ring_last_returns_the_newest_values_in_order():
    ring = Ring(size=5)
    assert ring.last(3).size == 0
    for v in range(8):
        ring.record(float(v))
    assert ring.last(3).tolist() == [5.0, 6.0, 7.0]
    assert ring.last(10).tolist() == [3.0, 4.0, 5.0, 6.0, 7.0]  # only what is stored
    assert ring.total == 8


def test_capture_clock_measures_waiting_and_processing_from_the_quickest_frame():
    clock = CaptureClock()
    assert clock.latency(0.0, 1.0) is None
    origin = 5000.0  # the camera's timestamps start anywhere
    # Frames captured every 1/30 s reach the callback 10 ms later, one of them 40 ms later.
    for i in range(30):
        delay = 0.040 if i == 10 else 0.010
        clock.arrived(origin + i / 30, 100.0 + i / 30 + delay)
    # A frame taken at once and done 15 ms later: 15 ms (the constant 10 ms of transport is not seen).
    assert clock.latency(origin + 29 / 30, 100.0 + 29 / 30 + 0.010 + 0.015) == pytest.approx(0.015)
    # The late frame's extra 30 ms of waiting is.
    assert clock.latency(origin + 10 / 30, 100.0 + 10 / 30 + 0.040 + 0.015) == pytest.approx(0.045)


def test_capture_clock_starts_over_when_the_camera_restarts():
    clock = CaptureClock()
    for i in range(10):
        clock.arrived(7000.0 + i / 30, 100.0 + i / 30 + 0.010)
    # Restarted 5 s later: new random origin, here earlier than the old one (a shorter offset
    # would otherwise make every later latency look 2000 s too long).
    for i in range(10):
        clock.arrived(5000.0 + i / 30, 105.0 + i / 30 + 0.020)
    assert clock.latency(5000.0 + 9 / 30, 105.0 + 9 / 30 + 0.030) == pytest.approx(0.010)
    # ... or later than the old one.
    for i in range(10):
        clock.arrived(9000.0 + i / 30, 110.0 + i / 30 + 0.010)
    assert clock.latency(9000.0 + 9 / 30, 110.0 + 9 / 30 + 0.030) == pytest.approx(0.020)


def test_latencies_are_read_once_each_and_losses_are_counted():
    stats = Stats(size=8)
    assert math.isnan(stats.summary(now=0.0).latency_ms_p95)
    for ms in (10, 20, 30):
        stats.record_latency(ms / 1000)
    values, lost = stats.latencies_since(0)
    assert values.tolist() == pytest.approx([10, 20, 30]) and lost == 0
    seen = stats.latencies_recorded
    for ms in range(40, 140, 10):  # ten more into a ring of eight
        stats.record_latency(ms / 1000)
    values, lost = stats.latencies_since(seen)
    assert values.tolist() == pytest.approx(list(range(60, 140, 10))) and lost == 2
    assert stats.latencies_since(stats.latencies_recorded)[0].size == 0
    assert stats.summary(now=0.0).latency_ms_p50 == pytest.approx(95)
