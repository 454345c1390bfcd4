"""Step 7 of the loop: a run that has converged ends before its deadline (the worker is freed)."""

from __future__ import annotations

import time

import pytest

from autodl.engine import Budget, folds, run, turns
from autodl.engine.holdout import holdout_nauc
from autodl.engine.turns import PERFECT, REFIT_NOTE

from ._data import splits
from ._fakes import Lookup, Slow
from ._fakes import table as _table

BUDGET = 30.0


def Oracle(*, table: dict, quality: float = 1.0) -> Lookup:
    """Knows the label of every training row (so a perfect hold-out score at quality 1);
    converges in one fit. Test rows get a fixed, weaker guess."""
    return Lookup(table=table, quality=quality, unknown=0.5, noise_seed=0, name="oracle")


def _run(train, test, learners, later=()):
    logs: list[str] = []
    t0 = time.monotonic()
    preds = list(
        run(train, test, None, Budget(BUDGET), log=logs.append, learners=learners, later=later)
    )
    return preds, time.monotonic() - t0, logs


def test_a_perfect_hold_out_score_ends_the_run_after_its_refit(monkeypatch):
    from autodl.engine import turns

    monkeypatch.setattr(turns, "PERFECT_ROWS", 0)  # the tiny split's hold-out counts here
    monkeypatch.setattr(folds, "KFOLD_ROWS", 0)  # a hold-out and a refit, not k-fold
    train, test = splits("tabular")
    k = train.spec.output_dim
    preds, took, logs = _run(train, test, [Oracle(table=_table(train)), Slow(k=k), Slow(k=k)])
    assert took < 5.0, logs  # not the 30 s budget: nothing could beat 1.0
    assert preds[0].valid_score >= PERFECT
    assert preds[-1].note == REFIT_NOTE  # the emitted model's refit still ran
    assert any("cannot be beaten: stopping slow, slow" in line for line in logs), logs
    assert any(line.startswith("converged at") for line in logs), logs


@pytest.mark.slow
def test_a_perfect_score_on_a_small_hold_out_stops_nothing():
    """On a few rows a perfect score is often luck: the other learners keep their turns."""
    from autodl.engine import turns

    train, test = splits("tabular")
    k = train.spec.output_dim
    logs: list[str] = []
    learners = [Oracle(table=_table(train)), Slow(k=k)]
    list(run(train, test, None, Budget(3.0), log=logs.append, learners=learners))
    assert turns.PERFECT_ROWS > 0
    assert not any("cannot be beaten" in line for line in logs), logs


@pytest.mark.slow
class _Steady(Lookup):
    """Scores what the oracle it copies scores, turn after turn, and never converges:
    never dominated (step 3), never a gain (step 7)."""

    @property
    def done(self) -> bool:
        return False

    def fit(self, data, seconds):
        time.sleep(min(seconds, 0.2))
        return super().fit(data, seconds)


def test_the_later_stage_ends_once_the_emitted_score_stops_gaining():
    train, test = splits("tabular")
    plan = [Oracle(table=_table(train), quality=0.15)]
    later = [
        _Steady(table=_table(train), quality=0.15, unknown=0.5, noise_seed=0, name=f"steady{i}")
        for i in range(2)
    ]
    preds, took, logs = _run(train, test, plan, later=later)
    assert preds and preds[0].valid_score < PERFECT
    # the later learners never gain: the run ends after STALE x the time to the last gain
    assert took < 10.0 + 6.0, logs  # STALE_MIN, and not the 30 s budget
    assert any("no hold-out gain of 0.0001" in line for line in logs), logs
    assert holdout_nauc(test.load().labels, preds[-1].test) is not None


class _Tired(_Steady):
    """A `_Steady` that converges after five turns (about a second)."""

    @property
    def done(self) -> bool:
        return self._fits >= 5


def test_a_later_learner_gets_its_turns_however_long_ago_the_last_gain_was(monkeypatch):
    # issue 14: on spokendigits a gain at 0.1 s ended the run as the later extra trees
    # started, 21 s in, before their first turn (they reached top-1 1.000 against 0.963)
    monkeypatch.setattr(turns, "STALE_MIN", 0.3)  # the plan outlasts it without a gain
    train, test = splits("tabular")
    table = _table(train)
    plan = [Oracle(table=table, quality=0.15), _Tired(table=table, quality=0.15, unknown=0.5)]
    later = [Lookup(table=table, quality=0.6, unknown=0.5, noise_seed=0, name="strong")]
    preds, _, logs = _run(train, test, plan, later=later)
    assert preds[-1].learner == "strong", logs


@pytest.mark.slow
def test_a_run_still_gaining_keeps_to_its_budget():
    train, test = splits("tabular")
    k = train.spec.output_dim
    preds, took, logs = _run(train, test, [Slow(k=k)], later=[])
    # a learner that never converges (and a score that is not perfect): the deadline ends it
    assert took > BUDGET - 1.0, logs
    assert not any(line.startswith("converged at") for line in logs)
