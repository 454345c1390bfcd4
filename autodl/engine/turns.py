"""How learners take turns: one run's state, and the steps of `loop` as methods.

`loop.run` loads the data and draws the hold-out, then drives a `Schedule` through its
phases, each a generator of `Prediction`s: `Schedule.one_prediction` (too few rows for a
hold-out), `Schedule.quick` (step 1: turns on the first rows while the rest is read) and
`Schedule.take_turns` (steps 3-7). The phases are made of the steps: `Schedule.turn` (fit
and score one learner), `Schedule.offer` (emit it when better), `Schedule.ensemble`
(blend, `blend`), `Schedule.refit_copy` and `Schedule.refit_turn` (refit on all rows),
`Schedule.stale` and `Schedule.settle` (end early). The numbers are the steps of
`loop`'s module doc, which says why each works as it does.

Which candidate replaces the emitted prediction is `holdout.prefer`'s call: NAUC
first, and within its noise what users act on (top-1 accuracy or F1, log loss),
then the prediction already emitted. Every emitted prediction is calibrated on the
hold-out (`calibrate`, fitted for the candidate by `holdout.judge`): its test scores
per column by a strictly increasing map (each column's AUC unchanged), its unlabelled
probabilities for users (rows summing to 1 for multi-class).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autodl.engine import blend, calibrate, export, holdout
from autodl.engine.bag import Bag
from autodl.engine.budget import Budget
from autodl.engine.folds import Folds
from autodl.engine.holdout import holdout_nauc
from autodl.engine.learner import Learner, RawX, clone
from autodl.formats.types import Arrays

QUICK_TURN = 5.0  # seconds: the longest turn of a learner while the rest is being read
#: ... and of the first turn, before anything is emitted: on 20,000 images the first
#: linear model's 5 s turn was most of the first prediction's time (issue 14)
FIRST_TURN = 1.0
MIN_STEP = 0.05  # seconds: do not start a step with less left
RESERVE = 0.1  # share of the remaining time kept back from each fit for predicting
REFIT_NOTE = "refit on all training rows; score from the hold-out"
FOLDS_NOTE = "mean of the fold models; score from every row's out-of-fold prediction"
GAIN = 1e-4  # hold-out NAUC an emitted prediction must gain to count as progress (step 7)
STALE = 1.0  # later stage: end after this times the run's time to its last gain (step 7)
STALE_MIN = 10.0  # ... and never less than this many seconds (a gain early on counts most)
PERFECT = 1.0 - 1e-9  # an emitted hold-out NAUC that nothing can beat
#: ... on a hold-out of at least this many rows: on a small one a perfect score is often
#: luck (issue 14: a one-epoch CNN scored 1.000 on 12 rows and 33 % on the test set).
PERFECT_ROWS = 200
#: consecutive turns a learner may be dominated (and not catching up) before it stops
#: taking turns (step 3): on flights the 7-leaf LightGBM was behind all along (issue 14)
DOMINATED = 3


@dataclass
class Prediction:
    """One emitted prediction: probabilities (n, output_dim) for test and unlabelled."""

    test: np.ndarray
    unlabelled: np.ndarray | None
    learner: str
    valid_score: float | None
    note: str = ""
    #: what made it (`export.Recipe`: learners, weights, calibration), to save the model
    model: Any = field(default=None, repr=False, compare=False)


@dataclass
class _Best:
    """The last emitted prediction: its score, and the learner or ensemble behind it;
    ``judged``: its hold-out record (`holdout.judge`), None without a hold-out."""

    score: float | None = None
    learner: Learner | None = None
    emitted: bool = False
    members: tuple[blend.Member, ...] = ()  # an ensemble's picks (with repeats)
    judged: holdout.Judged | None = None

    def beaten_by(self, judged: holdout.Judged | None, margin: float = 0.0) -> bool:
        if not self.emitted:
            return True
        if judged is None or self.judged is None:  # no hold-out: NAUC alone, as before
            score = None if judged is None else judged.nauc
            return score is not None and (self.score is None or score > self.score + margin)
        return holdout.prefer(judged, self.judged, margin)


@dataclass
class _Turn:
    """What one ``fit`` call gave (step 3); ``test`` is None unless it was worth predicting."""

    score: float | None
    valid: np.ndarray | None
    test: np.ndarray | None
    unlabelled: np.ndarray | None
    done: bool
    judged: holdout.Judged | None = None


@dataclass
class Schedule:
    """One run's state, and its steps as methods (the numbers are `loop`'s module doc's)."""

    test_x: RawX
    unlabelled_x: RawX | None
    n_test: int
    output_dim: int
    budget: Budget
    say: Callable[[str], None]
    threads: Callable[[], Any]
    best: _Best = field(default_factory=_Best)
    spent: dict[int, float] = field(default_factory=dict)
    failed: set[int] = field(default_factory=set)
    pool: dict[int, blend.Member] = field(default_factory=dict)
    gained_at: float = 0.0  # seconds into the run of the last gain of GAIN (step 7)
    gained: float | None = None  # the emitted score at that time
    later_at: float | None = None  # seconds into the run when the first later learner started
    converged: str = ""  # why the run ended before its deadline (step 7); "" if it did not
    multiclass: bool = False  # every training row has one class: users' rows sum to 1
    behind: dict[int, int] = field(default_factory=dict)  # consecutive dominated turns
    last_score: dict[int, float] = field(default_factory=dict)  # each learner's last score
    # the saved model (`export`): the learner (or its frozen bytes) behind each pool
    # member, the learner's fit count when the member was taken, fit counts
    sources: dict[int, Any] = field(default_factory=dict)
    taken: dict[int, int] = field(default_factory=dict)
    fits: dict[int, int] = field(default_factory=dict)
    owner: dict[int, int] = field(default_factory=dict)  # id(member) -> id(its learner)
    side: int | None = None  # the longest image side the data was loaded at (`loop`)
    refitting: dict[int, tuple[float, int]] = field(default_factory=dict)  # seconds, turns

    # ---- the phases: each a generator of predictions

    def one_prediction(
        self, plan: Sequence[Learner], data: Arrays, note: str
    ) -> Iterator[Prediction]:
        """Too few rows for a hold-out (step 2): the first learner that fits gives the
        one prediction; each gets a share of the time left among those not yet tried."""
        self.multiclass = holdout.multiclass(data.labels)
        for i, learner in enumerate(plan):
            left = self.budget.remaining()
            if left < MIN_STEP:
                return
            turn = self.turn(learner, data, None, left * (1 - RESERVE) / (len(plan) - i))
            if turn is not None:
                yield from self.offer(learner, turn, note)
                return

    def quick(
        self,
        plan: Sequence[Learner],
        fit: Arrays,
        valid: Arrays,
        note: str,
        until: Callable[[], bool],
    ) -> Iterator[Prediction]:
        """Step 1: learners take turns of at most ``QUICK_TURN`` seconds (``FIRST_TURN``
        until the first prediction) on the quick prefix until ``until()`` says the rest
        is read; no ensembles, no refits."""
        self.multiclass = holdout.multiclass(np.concatenate([fit.labels, valid.labels]))
        active = list(plan)
        self.pool = {}
        while active:
            for learner in list(active):
                left = self.budget.remaining()
                if left < MIN_STEP or until():
                    return
                cap = QUICK_TURN if self.best.emitted else FIRST_TURN
                seconds = min(left * (1 - RESERVE) / len(active), cap)
                turn = self.turn(learner, fit, valid, seconds)
                if turn is None or turn.done:
                    active.remove(learner)
                if turn is not None and turn.test is not None:
                    yield from self.offer(learner, turn, note)

    def rescore(self, data: Arrays, mask: np.ndarray) -> None:
        """Step 2: score the emitted (quick) model again on the full split's hold-out."""
        learner = self.best.learner
        if learner is None:
            return
        valid = holdout.rows(data, mask)
        try:
            with self.threads():
                p = np.asarray(learner.predict_proba(valid.x), np.float64)
                self.best.judged = holdout.judge(valid.labels, p, self.multiclass)
            self.best.score = self.best.judged.nauc
        except Exception as e:
            self.best.judged = None  # another hold-out's record: compare by NAUC alone
            self.say(f"{learner.name}: re-scoring failed: {type(e).__name__}: {e}")

    def take_turns(
        self,
        plan: Sequence[Learner],
        fit: Arrays,
        valid: Arrays,
        full: Arrays,
        later: Sequence[Learner],
    ) -> Iterator[Prediction]:
        """Steps 3-7 on ``fit``, scored on ``valid``: turns, blends, refits on ``full``,
        the ``later`` learners one at a time, until the time is up or nothing can gain."""
        self.multiclass = holdout.multiclass(full.labels)
        active, waiting = list(plan), list(later)
        self.pool = {}
        refits: dict[int, int] = {}  # id(clone refitted on full) -> id(its hold-out learner)
        while active or waiting:
            if not active:  # step 6
                active.append(waiting.pop(0))
                if self.later_at is None:
                    self.later_at = self.budget.elapsed()
            for learner in list(active):
                left = self.budget.remaining()
                if left < MIN_STEP or (self.later_at is not None and self.stale()):
                    return
                if len(valid.labels) >= PERFECT_ROWS and self.settle(active, waiting, refits):
                    break  # ``active`` changed: the next round goes over what is left
                seconds = left * (1 - RESERVE) / len(active)
                if id(learner) in refits:
                    if not self.can_enter(refits[id(learner)], learner.name):  # step 5
                        active.remove(learner)  # beaten since: its refit cannot pay
                        continue
                    yield from self.refit_turn(learner, refits[id(learner)], full, seconds, active)
                    continue
                turn = self.turn(learner, fit, valid, seconds)
                if turn is None or turn.done:
                    active.remove(learner)
                if turn is None:
                    continue
                if turn.test is not None:
                    yield from self.offer(learner, turn, "")
                    yield from self.ensemble(valid)
                if not turn.done and self.dominated(learner, turn.score):  # step 3
                    active.remove(learner)  # gives its time away to the others
                refit = turn.done and id(learner) in self.pool  # step 5
                if refit and self.can_enter(id(learner), learner.name):
                    fresh = self.refit_copy(learner)
                    if fresh is not None:
                        refits[id(fresh)] = id(learner)
                        active.append(fresh)

    # ---- the steps

    def turn(
        self, learner: Learner, fit: Arrays, valid: Arrays | None, seconds: float
    ) -> _Turn | None:
        """Step 3: one ``fit`` call, scored on ``valid``; test (and unlabelled)
        predictions only when the score beats the emitted one or the learner's own
        best. None when the learner raised: logged, and the caller drops it."""
        try:
            t0 = time.monotonic()
            self.keep(learner)
            with self.threads():
                learner.threads = self.n_threads  # the loop's count (`Learner.threads`)
                learner.fit(fit, seconds)
            self.fits[id(learner)] = self.fits.get(id(learner), 0) + 1
            took = time.monotonic() - t0
            self.spent[id(learner)] = self.spent.get(id(learner), 0.0) + took
            score, p_valid, judged = None, None, None
            if valid is not None:
                p_valid, labels, rows = self.held_out(learner, valid)
                score = holdout_nauc(labels, p_valid)
                with self.threads():  # scipy's BLAS on one thread (`judged`)
                    judged = holdout.judge(labels, p_valid, self.multiclass, score, rows)
            done = learner.done
            self.say(
                f"{learner.name}: fit {took:.2f}s, valid NAUC {_fmt(score)}"
                + (f" ({learner.progress})" if isinstance(learner, Folds) else "")
                + (f", {judged.summary()}" if judged is not None else "")
                + (" (done)" if done else "")
            )
            own = self.pool.get(id(learner))
            better = self.best.beaten_by(judged) or (
                score is not None
                and (own is None or own.judged is None or holdout.prefer(judged, own.judged))
            )
            test, unl = self.predict(learner) if better else (None, None)
        except Exception as e:  # a failing learner must not end the run
            self.say(f"{learner.name} failed: {type(e).__name__}: {e}")
            self.failed.add(id(learner))
            return None
        return _Turn(score, p_valid, test, unl, done, judged)

    def held_out(
        self, learner: Learner, valid: Arrays
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Step 2: (predictions, labels, rows) on the hold-out; for a `folds.Folds`, the
        out-of-fold predictions of the folds fitted so far (rows: None once all are)."""
        if isinstance(learner, Folds):
            covered, p = learner.oof()
            return p, valid.labels[covered], None if learner.complete else covered
        with self.threads():
            p = np.asarray(learner.predict_proba(valid.x), np.float64)
        return p, valid.labels, None

    def offer(self, learner: Learner, turn: _Turn, note: str) -> Iterator[Prediction]:
        """Step 3: keep the learner's new best state; emit it when it beats the emitted.
        A k-fold learner's record on some folds only (`folds`) is no pool member; once
        the emitted prediction's learner has all its folds fitted, their mean replaces
        it (``FOLDS_NOTE``)."""
        partial = turn.judged is not None and turn.judged.rows is not None
        best = self.best
        whole = (
            best.learner is learner
            and not partial
            and best.judged is not None
            and best.judged.rows is not None
        )
        if whole and not note:
            note = FOLDS_NOTE
        if turn.score is not None and not partial:
            member = self.pool[id(learner)] = blend.Member(
                learner.name, turn.score, turn.valid, turn.test, turn.unlabelled, turn.judged
            )
            self.sources[id(member)] = learner
            self.taken[id(member)] = self.fits.get(id(learner), 0)
            self.owner[id(member)] = id(learner)
            self.forget()
        if whole or self.best.beaten_by(turn.judged):
            yield from self.emit(
                _Best(turn.score, learner, True, judged=turn.judged),
                Prediction(
                    turn.test,
                    turn.unlabelled,
                    learner.name,
                    turn.score,
                    note,
                    export.Recipe.of([learner], [learner.name]),
                ),
            )

    def ensemble(self, valid: Arrays) -> Iterator[Prediction]:
        """Step 4: emit a mean of pool members when it beats the emitted score by
        ``ENSEMBLE_MARGIN`` (greedy ensemble selection, `blend.select`)."""
        picked = blend.select(list(self.pool.values()), valid.labels)
        if picked is None:
            return
        chosen, score = picked
        p_valid = sum(m.valid for m in chosen) / len(chosen)
        with self.threads():
            judged = holdout.judge(valid.labels, p_valid, self.multiclass, score)
        if not self.best.beaten_by(judged, blend.ENSEMBLE_MARGIN):
            return
        test, unl = blend.mean(chosen)
        name = blend.name(chosen)
        self.say(f"{name}: valid NAUC {score:.4f}, {judged.summary()}")
        yield from self.emit(
            _Best(score, None, True, tuple(chosen), judged),
            Prediction(test, unl, name, score, "", self.recipe(chosen)),
        )

    def emit(self, best: _Best, prediction: Prediction) -> Iterator[Prediction]:
        """Make ``best`` the emitted prediction, calibrated (`calibrated`); a gain of
        ``GAIN`` restarts the stale clock."""
        self.best = best
        score = best.score
        if score is not None and (self.gained is None or score >= self.gained + GAIN):
            self.gained, self.gained_at = score, self.budget.elapsed()
        yield self.calibrated(prediction)

    def calibrated(self, prediction: Prediction) -> Prediction:
        """``prediction`` (raw scores) through the emitted one's calibration: test scores
        per column strictly increasing (AUC unchanged), unlabelled ones as probabilities
        for users (rows summing to 1 for multi-class)."""
        judged = self.best.judged
        cal = (
            judged.calibration
            if judged is not None
            else calibrate.identity(self.output_dim, self.multiclass)
        )
        prediction.test = cal.scores(prediction.test)
        if prediction.model is not None:
            prediction.model.calibration = cal
            prediction.model.extra["max_side"] = self.side
        if prediction.unlabelled is not None:
            prediction.unlabelled = cal.probabilities(prediction.unlabelled)
        return prediction

    def refit_copy(self, learner: Learner) -> Learner | None:
        """Step 5: a fresh learner to refit on all rows: ``refit_copies`` seed copies averaged
        (`bag.Bag`), fewer when time is short, while more than three times what the
        copies cost on the hold-out split is left; None when not even one fits."""
        cost = 3 * self.spent[id(learner)]
        left = self.budget.remaining() - MIN_STEP
        k = min(learner.refit_copies, int(left // cost) if cost > 0 else learner.refit_copies)
        if k < 1:
            return None
        return clone(learner) if k == 1 else Bag(base=clone(learner), n=k)

    def refit_turn(
        self, fresh: Learner, key: int, full: Arrays, seconds: float, active: list[Learner]
    ) -> Iterator[Prediction]:
        """Step 5: one turn of a refit on all rows; once converged, its predictions replace the
        hold-out model's (in the pool, and re-emitted if the best prediction uses them)."""
        try:
            t0 = time.monotonic()
            with self.threads():
                fresh.threads = self.n_threads
                fresh.fit(full, seconds)
            done = fresh.done
            took, turns = self.refitting.get(id(fresh), (0.0, 0))
            took, turns = took + time.monotonic() - t0, turns + 1
            self.refitting[id(fresh)] = (took, turns)
            if done:
                del self.refitting[id(fresh)]  # forgotten: a later learner may get its id
            if turns == 1 or done:  # its first turn and its last: not one line a turn
                each = f" in {turns} turns" if turns > 1 else ""
                self.say(
                    f"{fresh.name}: refit on all {len(full)} rows, fit {took:.2f}s{each}"
                    + (" (done)" if done else "")
                )
            if not done:
                return
            active.remove(fresh)
            test, unl = self.predict(fresh)
        except Exception as e:
            self.say(f"{fresh.name} refit failed: {type(e).__name__}: {e}")
            if fresh in active:
                active.remove(fresh)
            return
        member = self.pool.get(key)
        if member is None:
            return
        member.test, member.unlabelled, member.name = test, unl, f"{member.name} refit"
        self.sources[id(member)] = fresh  # trained no more: the refit stands for it
        self.taken[id(member)] = self.fits.get(id(fresh), 0)
        best = self.best
        if best.learner is not None and id(best.learner) == key:
            model = export.Recipe.of([fresh], [fresh.name])
            yield self.calibrated(Prediction(test, unl, fresh.name, best.score, REFIT_NOTE, model))
        elif any(self.owner.get(id(m)) == key for m in best.members):
            yield from self.refitted_ensemble(key, member)

    def refitted_ensemble(self, key: int, member: blend.Member) -> Iterator[Prediction]:
        """Step 5: the emitted ensemble holds states of learner ``key``, and ``member``,
        its converged state, has been refitted on all rows: the ensemble with ``member``
        in their place. Where it held ``member`` alone, nothing changes on the hold-out:
        it is emitted again with the refitted predictions and the same score. Where it
        held earlier states (taken before the learner converged), it is emitted unless
        it is worse on the hold-out by more than the noise (`holdout.prefer` of the
        emitted one over it). A tie goes to the converged model refitted on all rows: it
        has seen a fifth more rows and trained to its early-stopping point (issue 14:
        cityweather kept an ensemble of a 20-round LightGBM, top-1 0.971 on the test set
        against a single converged LightGBM's 0.987)."""
        best = self.best
        members = tuple(member if self.owner.get(id(m)) == key else m for m in best.members)
        if all(a is b for a, b in zip(members, best.members, strict=True)):
            test, unl = blend.mean(members)
            name, model = blend.name(members), self.recipe(members)
            yield self.calibrated(Prediction(test, unl, name, best.score, REFIT_NOTE, model))
            return
        if best.judged is None or member.judged is None:
            return
        labels = member.judged.labels
        p_valid = sum(m.valid for m in members) / len(members)
        score = holdout_nauc(labels, p_valid)
        with self.threads():
            judged = holdout.judge(labels, p_valid, self.multiclass, score)
        if score is None or holdout.prefer(best.judged, judged):
            return
        name = blend.name(members)
        self.say(
            f"{name}: the emitted ensemble, the learner's earlier states replaced by "
            f"{member.name} (its converged state on all rows; valid NAUC "
            f"{_fmt(best.score)} -> {score:.4f}, {judged.summary()})"
        )
        test, unl = blend.mean(members)
        yield from self.emit(
            _Best(score, None, True, members, judged),
            Prediction(test, unl, name, score, REFIT_NOTE, self.recipe(members)),
        )

    @property
    def n_threads(self) -> int | None:
        """The loop's thread count, set on every learner before its ``fit``."""
        return getattr(self.threads, "n", None)

    def _in_emitted(self, key: int) -> bool:
        best, member = self.best, self.pool.get(key)
        if best.learner is not None and id(best.learner) == key:
            return True
        return member is not None and any(m is member for m in best.members)

    def _best_other(self, key: int) -> float | None:
        scores = [m.score for k, m in self.pool.items() if k != key and m.score is not None]
        return max(scores) if scores else None

    def _beaten(self, key: int, own: float) -> bool:
        """Whether another pool member's hold-out NAUC beats ``own`` (learner ``key``'s)
        by more than the noise of the paired difference (``holdout.TIE_Z`` standard
        errors, as `holdout.prefer` judges; NAUC alone where the records differ in rows):
        on a hold-out of 24 rows 0.9703 against 0.9769 is no evidence."""
        others = [(k, m) for k, m in self.pool.items() if k != key and m.score is not None]
        if not others:
            return False
        _, top = max(others, key=lambda km: km[1].score)
        if top.score <= own:
            return False
        mine = self.pool.get(key)
        a, b = top.judged, None if mine is None else mine.judged
        if a is None or b is None or a.rows is not None or b.rows is not None:
            return True
        if a.labels.shape != b.labels.shape or mine.score != own:
            return True
        return top.score - own > holdout.TIE_Z * holdout._nauc_noise(a, b)

    def dominated(self, learner: Learner, score: float | None) -> bool:
        """Step 3: True (logged) when ``learner`` has been dominated for ``DOMINATED``
        consecutive turns: its best hold-out score below another learner's best, by more
        than its last turn gained (at that pace it would not catch up within a turn) and
        by more than the noise (`_beaten`), and it is not (in) the emitted prediction.
        It then stops taking turns."""
        key = id(learner)
        last = self.last_score.get(key)
        if score is not None:
            self.last_score[key] = score
        own = self.pool[key].score if key in self.pool else score
        other = self._best_other(key)
        if score is None or own is None or other is None or self._in_emitted(key):
            self.behind[key] = 0
            return False
        gain = score - last if last is not None else np.inf
        if own >= other or gain >= other - own or not self._beaten(key, own):
            self.behind[key] = 0
            return False
        self.behind[key] = self.behind.get(key, 0) + 1
        if self.behind[key] < DOMINATED:
            return False
        self.say(
            f"{learner.name}: dominated for {DOMINATED} turns (valid NAUC {own:.4f} < "
            f"{other:.4f}, last gain {gain:+.4f}): gives its time to the others"
        )
        return True

    def can_enter(self, key: int, name: str) -> bool:
        """Step 5: whether the converged learner ``key`` can be (in) the emitted
        prediction, so that refitting it on all rows can pay: it is, or no other
        learner beats it by more than the noise (`_beaten`). Asked before its refit
        starts and before each refit turn; otherwise the refit is skipped or stopped
        (logged)."""
        member = self.pool.get(key)
        own, other = (member.score if member else None), self._best_other(key)
        if self._in_emitted(key) or own is None or other is None or not self._beaten(key, own):
            return True
        self.say(
            f"{name}: not refitted on all rows (valid NAUC {own:.4f} < {other:.4f}, "
            "not in the emitted prediction)"
        )
        return False

    def stale(self) -> bool:
        """Step 7: no gain of ``GAIN`` for ``STALE`` times the run's time to the last one,
        counted from the later learners' start at the earliest (they are what the rest
        of the time is for: on spokendigits a gain at 0.1 s ended the run as the first
        one started, before its first turn), then ``converged`` says so."""
        since = max(self.gained_at, self.later_at or 0.0)
        if self.budget.elapsed() - since < STALE * max(self.gained_at, STALE_MIN):
            return False
        self.converged = f"no hold-out gain of {GAIN:g} since {self.gained_at:.1f}s"
        return True

    def settle(self, active: list[Learner], waiting: list[Learner], refits: dict[int, int]) -> bool:
        """Step 7: with a perfect emitted score, drop what cannot change the emitted
        prediction: every learner but the emitted ones (still training, or their refits).
        True when something was dropped (then ``converged`` says so)."""
        best = self.best
        if not best.emitted or best.score is None or best.score < PERFECT:
            return False
        if best.judged is not None and best.judged.rows is not None:  # some folds only
            return False
        keys = {k for k, m in self.pool.items() if any(m is b for b in best.members)}
        if best.learner is not None:
            keys.add(id(best.learner))
        keep = [lr for lr in active if id(lr) in keys or refits.get(id(lr)) in keys]
        if len(keep) == len(active) and not waiting:
            return False
        dropped = [lr.name for lr in active if lr not in keep] + [lr.name for lr in waiting]
        self.say(
            f"hold-out NAUC {best.score:.4f} cannot be beaten: stopping {', '.join(dropped)}"
            + ("; the emitted model's refit goes on" if keep else "")
        )
        active[:], waiting[:] = keep, []
        self.converged = "perfect hold-out score"
        return True

    # ---- the saved model (`export`): which learner state made each emitted prediction

    def recipe(self, members: Sequence[blend.Member]) -> export.Recipe | None:
        """An ensemble's learners (or their frozen states), one pick per member."""
        return export.Recipe.of(
            [self.sources.get(id(m)) for m in members], [m.name for m in members]
        )

    def keep(self, learner: Learner) -> None:
        """Before ``learner`` trains on: freeze it where a pool member's predictions come
        from its current state (an ensemble may use that member later)."""
        if len(self.pool) < 2:
            return
        now = self.fits.get(id(learner), 0)
        for m in self.pool.values():
            if self.sources.get(id(m)) is learner and self.taken.get(id(m)) == now:
                try:
                    self.sources[id(m)] = export.freeze(learner)
                except Exception as e:  # the model cannot be saved; the run goes on
                    self.sources[id(m)] = None
                    self.say(f"{learner.name}: cannot keep its state for the model: {e}")

    def forget(self) -> None:
        """Drop the sources of members neither in the pool nor in the emitted ensemble."""
        live = {id(m) for m in self.pool.values()} | {id(m) for m in self.best.members}
        for key in [k for k in self.sources if k not in live]:
            del self.sources[key]
            self.taken.pop(key, None)
            self.owner.pop(key, None)

    def predict(self, learner: Learner) -> tuple[np.ndarray, np.ndarray | None]:
        """Test and unlabelled probabilities, checked for shape and finiteness, in [0, 1]."""
        with self.threads():
            test = np.asarray(learner.predict_proba(self.test_x), np.float64)
            unl = None if self.unlabelled_x is None else learner.predict_proba(self.unlabelled_x)
        for p, n in ((test, self.n_test), (unl, None if unl is None else len(self.unlabelled_x))):
            if p is not None and (np.shape(p) != (n, self.output_dim) or not np.isfinite(p).all()):
                raise ValueError(
                    f"predict_proba gave {np.shape(p)}, expected ({n}, {self.output_dim}) finite"
                )
        return np.clip(test, 0, 1), None if unl is None else np.clip(
            np.asarray(unl, np.float64), 0, 1
        )


def _fmt(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.4f}"
