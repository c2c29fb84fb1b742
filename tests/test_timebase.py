"""timebase: seconds <-> samples <-> 12.5 Hz frames, rounding through sample counts."""

from duplexalign import timebase as tb


def test_constants_agree():
    assert tb.SAMPLE_RATE / tb.FRAME_RATE == tb.SAMPLES_PER_FRAME == 1920
    assert tb.FRAME_SECONDS == 0.08


def test_seconds_to_samples_rounds_half_up():
    assert tb.seconds_to_samples(1.0) == 24000
    assert tb.seconds_to_samples(0.5 / 24000) == 1  # exact half: up, not to even (0)
    assert tb.seconds_to_samples(2.5 / 24000) == 3  # banker's rounding would give 2
    assert tb.seconds_to_samples(0.4 / 24000) == 0
    assert tb.seconds_to_samples(1.0, sample_rate=16000) == 16000


def test_frame_edges_are_exact_despite_float_error():
    # 0.08 * 24000 is 1920.0000000000002 in floating point; the sample count absorbs it.
    assert tb.seconds_to_frame(0.08) == 1
    assert tb.seconds_to_frame(0.0799) == 0
    assert tb.seconds_to_frame(0.16) == 2  # 0.16 * 24000 = 3839.9999999999995
    assert tb.seconds_to_frame(0.7) == 8  # 16800 samples // 1920 = 8.75 -> 8
    for f in range(500):
        assert tb.seconds_to_frame(tb.frame_to_seconds(f)) == f


def test_num_frames_is_ceil():
    assert tb.num_frames(0.0) == 0
    assert tb.num_frames(0.08) == 1
    assert tb.num_frames(0.081) == 2
    assert tb.num_frames(10.0) == 125
    assert tb.samples_to_frames(1920) == 1
    assert tb.samples_to_frames(1921) == 2
    assert tb.samples_to_seconds(36000) == 1.5
