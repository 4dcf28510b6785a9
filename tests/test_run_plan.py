"""Turning `bench run` options into cells: a training way per test shot."""

import pytest

from bench.errors import BenchError
from bench.plan.options import per_shot_ways


def test_one_way_for_every_cell_or_one_per_shot():
    assert per_shot_ways(None) == {}
    assert per_shot_ways("20") == {None: 20}
    assert per_shot_ways("1:30, 5:20") == {1: 30, 5: 20}


@pytest.mark.parametrize("text, message", [("1:30,5", "'5' is not SHOT:WAY"),
                                           ("1:x", "'1:x' is not SHOT:WAY"),
                                           ("1:0", "must be at least 2"),
                                           ("1:1", "must be at least 2")])
def test_bad_per_shot_ways_are_one_line_errors(text, message):
    with pytest.raises(BenchError, match=message):
        per_shot_ways(text)
