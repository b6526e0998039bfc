"""knn.live.answer_size: when answers go back at half size, and how often the cameras are counted."""

from knn.live.answer_size import CHECK_SECONDS, AnswerSize


class Clock:
    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


def test_half_size_above_the_cameras_per_core_limit_counted_once_a_second():
    cameras, counted, clock = [4], [], Clock()

    def count() -> int:
        counted.append(clock.now)
        return cameras[0]

    size = AnswerSize(count, cores=2, clock=clock)
    assert size.limit == 4 and not size.halved()  # two cameras per core on two cores: still full size
    cameras[0] = 5
    assert not size.halved() and len(counted) == 1  # not counted again within the second
    clock.now += CHECK_SECONDS
    assert size.halved() and size.cameras == 5 and len(counted) == 2
    cameras[0] = 3
    clock.now += CHECK_SECONDS
    assert not size.halved()


def test_the_operator_sets_the_limit_or_turns_it_off():
    size = AnswerSize(lambda: 9, cores=4, clock=Clock())
    assert size.halved()  # 9 > 2 x 4
    size.set_cameras_per_core(3)
    assert not size.halved()  # 9 <= 3 x 4
    size.set_cameras_per_core(0)
    assert size.limit == float("inf") and not size.halved()
