"""Budget: arithmetic on a fake clock."""

from __future__ import annotations

import pytest

from autodl.engine import Budget


class FakeClock:
    def __init__(self, t: float = 100.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_counts_down_on_its_clock():
    clock = FakeClock()
    b = Budget(10, clock=clock)
    assert b.deadline == 110 and b.remaining() == 10
    clock.t = 104
    assert b.elapsed() == 4 and b.remaining() == 6
    clock.t = 111
    assert b.remaining() == 0


def test_an_explicit_start():
    clock = FakeClock(50)
    assert Budget(10, start=45, clock=clock).remaining() == 5


def test_zero_budget_is_spent_and_negative_is_refused():
    assert Budget(0, clock=FakeClock()).remaining() == 0
    with pytest.raises(ValueError, match="seconds must be a number >= 0"):
        Budget(-1)
