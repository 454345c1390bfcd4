"""The anytime loop: schedule the domain's learners, emit a prediction when it is better.

``run(train, test, unlabelled, budget)`` is a generator of `Prediction`s:

1. Load the data (`data`): images at most 128 px per side on CPU (224 on CUDA), and
   within a memory bound (smaller images, then fewer training rows; the run log says
   so). On a large train split (more than ``2 * QUICK_ROWS`` rows) the first
   ``QUICK_ROWS`` rows are loaded alone and copies of the plan's learners take turns
   on them (``QUICK_TURN`` seconds at most, no ensembles), for early predictions,
   while the rest is read in a background thread; then the plan starts on all rows.
2. Hold out ``HOLDOUT`` of the rows (stratified on each row's first positive class).
   The validation score is NAUC = 2 * AUC - 1, macro over the classes with both
   values in the hold-out. When the full split replaces the quick prefix, the
   hold-out keeps the prefix's hold-out rows and adds rows the quick model never saw,
   and the emitted model is re-scored on it, so scores stay comparable and honest.
3. Learners take turns, cheapest first: each ``fit`` call gets an equal share of the
   remaining time among the learners still running, and continues (warm start)
   where it left off. After each call the learner is scored; the test (and
   unlabelled) prediction of the same model is emitted only when the score beats
   the last emitted one. A learner that raises is logged and dropped.
4. Ensemble: each learner's best state so far (hold-out, test and unlabelled
   predictions) is kept; after each improvement, greedy ensemble selection with
   replacement over the strong ones (hold-out error at most ``BLEND_ERROR`` times the
   best's) is emitted when its hold-out NAUC beats the last emitted score by
   ``ENSEMBLE_MARGIN``.
5. Refit: a learner that has converged (and has a hold-out score) is refitted on all
   training rows (hold-out included) when more than three times what it has spent is
   left: a fresh clone of its configuration that takes turns with the other learners;
   for a learner whose ``refit_copies`` is k > 1 (LightGBM), the mean of up to k seed
   copies (`bag.Bag`, as many as three times their cost allows). Once the refit has
   converged, its test and unlabelled predictions replace the hold-out model's in the pool; ensemble selection still works on
   hold-out predictions, so a refitted member keeps the weight its hold-out model
   earned. If the emitted prediction is that learner, or an ensemble holding it, it is
   emitted again with the refitted predictions, the same hold-out score and a note. We
   refit because the sample datasets are small (a fifth more rows is worth more than
   the risk of an unvalidated refit: on cityweather, emailspam and moviegenres a
   converged LightGBM refitted on all rows scored 0.0003-0.03 more test NAUC), as
   AutoML systems usually do (FLAML's ``retrain_full``, AutoGluon's ``refit_full``).
   Refits used to wait until every learner was done, which within a minute on two
   cores rarely happened, and never followed an ensemble.
6. Later: when every learner (refits included) has converged and time is left, the
   domain's ``LATER`` learners (`bag.Bag`: seed-averaged copies of the plan's best
   kinds of learner) run one at a time, scored, emitted and blended like the others.
7. Converged: the run ends before the deadline (the engine sends "done", the job's
   worker is free) when nothing left can raise the emitted hold-out score: every
   learner, refit and later learner has converged; or the emitted score is a perfect
   1.0 on a hold-out of at least ``PERFECT_ROWS`` rows (nothing can beat it: only the
   emitted model's own refit still runs); or, once
   the later learners have started, the emitted score has not gained ``GAIN`` for
   ``STALE`` times the time it took to reach it (on ALC's log time axis a stretch as
   long as the whole run so far, where a late gain would count for little). ALC holds
   the last score to the deadline, so an early end does not lower it.

Text is held out in runs of consecutive rows (see `_holdout`): records cut from one
document sit together, and a row-wise hold-out rewards memorising documents.

The budget is checked before every step and no step is started with less than
``MIN_STEP`` seconds left; ingestion kills the process at the deadline regardless.
OpenMP and numpy's BLAS use ``threads`` threads (all cores by default) during steps
only, any other BLAS (scipy's) one thread (`_threads.ThreadLimits`: two busy-waiting
OpenBLAS pools made logistic regression 2-5x slower); torch gets the same count
(`_torch.set_threads`), and learners run one at a time, so torch, LightGBM and BLAS
never oversubscribe the cores.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autodl.engine import data as data_
from autodl.engine import image, pretrained, speech, tabular, text, video
from autodl.engine._threads import ThreadLimits, configured, controller, cores
from autodl.engine._torch import set_threads
from autodl.engine.bag import Bag
from autodl.engine.budget import Budget
from autodl.engine.learner import Learner, RawX, clone, stratified_indices, take
from autodl.formats.types import Arrays, DatasetSpec, Split
from autodl.scoring.metrics import auc_per_class, nauc_from_aucs

QUICK_ROWS = 2000
QUICK_TURN = 5.0  # seconds: the longest turn of a learner while the rest is being read
HOLDOUT = 0.2
MAX_HOLDOUT = 10_000
BLOCKS = 20  # runs of consecutive rows per class for a block hold-out (text)
MIN_ROWS = 20  # fewer training rows: no hold-out, one prediction from the first learner
MIN_STEP = 0.05  # seconds: do not start a step with less left
RESERVE = 0.1  # share of the remaining time kept back from each fit for predicting
ENSEMBLE_ROUNDS = 10  # members added (with replacement) by greedy ensemble selection
ENSEMBLE_MARGIN = 1e-4  # hold-out NAUC an ensemble must gain over the best to be emitted
BLEND_ERROR = 3.0  # ensemble members: hold-out error at most this times the best one's
BLEND_SLACK = 0.005  # ... or at most this error
REFIT_NOTE = "refit on all training rows; score from the hold-out"
GAIN = 1e-4  # hold-out NAUC an emitted prediction must gain to count as progress (step 7)
STALE = 1.0  # later stage: end after this times the run's time to its last gain (step 7)
STALE_MIN = 10.0  # ... and never less than this many seconds (a gain early on counts most)
PERFECT = 1.0 - 1e-9  # an emitted hold-out NAUC that nothing can beat
#: ... on a hold-out of at least this many rows: on a small one a perfect score is often
#: luck (issue 14: a one-epoch CNN scored 1.000 on 12 rows and 33 % on the test set).
PERFECT_ROWS = 200

controller()  # find the thread pools now, at import, not on the clock

PLANS: dict[str, Callable[[DatasetSpec, int], list[Learner]]] = {
    "tabular": tabular.plan,
    "image": image.plan,
    "text": text.plan,
    "speech": speech.plan,
    "video": video.plan,
}
# learners for the time left once a plan has converged (step 6)
LATER: dict[str, Callable[[DatasetSpec, int], list[Learner]]] = {"tabular": tabular.later}


@dataclass
class Prediction:
    """One emitted prediction: probabilities (n, output_dim) for test and unlabelled."""

    test: np.ndarray
    unlabelled: np.ndarray | None
    learner: str
    valid_score: float | None
    note: str = ""


def nauc(solution: np.ndarray, prediction: np.ndarray) -> float | None:
    """2 * macro AUC - 1 over the columns of ``solution`` with both values; None if none.

    The official metric's own tied-rank AUC (`autodl.scoring`), which is also 7-24x
    faster than scikit-learn's ``roc_auc_score`` on hold-out sizes (32 x 10: 0.28
    against 6.7 ms; 2000 x 100: 14 against 97 ms), and ensemble selection calls it
    for every candidate at every step."""
    aucs = auc_per_class((np.asarray(solution) > 0.5).astype(np.float64), prediction)
    return None if np.isnan(aucs).all() else nauc_from_aucs(aucs)


def _rows(a: Arrays, mask: np.ndarray) -> Arrays:
    idx = np.flatnonzero(mask)
    return Arrays(a.ids[idx], take(a.x, idx), a.labels[idx])


def _holdout(
    labels: np.ndarray,
    rng: np.random.Generator,
    prefix: np.ndarray | None = None,
    blocks: bool = False,
) -> np.ndarray:
    """Boolean hold-out mask; rows beyond ``prefix`` (an earlier mask) are drawn anew.

    ``blocks``: hold out runs of consecutive rows of a class instead of single rows.
    Texts cut from one document sit next to each other in the records; a hold-out of
    whole runs stands for unseen documents, so it does not reward learning a
    document's own words (convention2012: train and test are different speeches)."""
    start = 0 if prefix is None else len(prefix)
    mask = np.zeros(len(labels), bool)
    if prefix is not None:
        mask[:start] = prefix
    rest = labels[start:]
    n_take = max(0, min(MAX_HOLDOUT - int(mask.sum()), round(HOLDOUT * len(rest))))
    if not blocks:
        mask[start + stratified_indices(rest, n_take, rng)] = True
        return mask
    key = np.where(rest.max(axis=1) > 0.5, rest.argmax(axis=1), -1)
    for g in np.unique(key):
        rows = np.flatnonzero(key == g)
        runs = np.array_split(rows, max(1, min(len(rows) // 2, BLOCKS)))
        want = round(n_take * len(rows) / max(len(rest), 1))
        taken = 0
        for r in rng.permutation(len(runs)):
            if taken >= want or taken + len(runs[r]) >= len(rows):
                break
            mask[start + runs[r]] = True
            taken += len(runs[r])
    return mask


@dataclass
class _Best:
    score: float | None = None
    learner: Learner | None = None
    emitted: bool = False
    members: tuple[_Member, ...] = ()  # an ensemble's picks (with repeats)

    def beaten_by(self, score: float | None) -> bool:
        if not self.emitted:
            return True
        return score is not None and (self.score is None or score > self.score)


@dataclass
class _Member:
    """A learner's best state so far: hold-out, test and unlabelled predictions."""

    name: str
    score: float
    valid: np.ndarray
    test: np.ndarray
    unlabelled: np.ndarray | None


@dataclass
class _Run:
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
    pool: dict[int, _Member] = field(default_factory=dict)
    gained_at: float = 0.0  # seconds into the run of the last gain of GAIN (step 7)
    gained: float | None = None  # the emitted score at that time
    converged: str = ""  # why the run ended before its deadline (step 7); "" if it did not

    def emitted(self, score: float | None) -> None:
        """Record an emitted hold-out score: a gain of ``GAIN`` restarts the stale clock."""
        if score is not None and (self.gained is None or score >= self.gained + GAIN):
            self.gained, self.gained_at = score, self.budget.elapsed()

    def stale(self) -> bool:
        """No gain of ``GAIN`` for ``STALE`` times the run's time to the last one."""
        return self.budget.elapsed() - self.gained_at >= STALE * max(self.gained_at, STALE_MIN)

    def settle(self, active: list[Learner], waiting: list[Learner], refits: dict[int, int]) -> bool:
        """With a perfect emitted score, drop what cannot change the emitted prediction:
        every learner but the emitted ones (still training, or their refits). True when
        something was dropped."""
        best = self.best
        if not best.emitted or best.score is None or best.score < PERFECT:
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
        return True

    def predict(self, learner: Learner) -> tuple[np.ndarray, np.ndarray | None]:
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

    def stage(
        self,
        learners: Sequence[Learner],
        fit: Arrays,
        valid: Arrays | None,
        once: bool = False,
        note: str = "",
        full: Arrays | None = None,
        later: Sequence[Learner] = (),
        until: Callable[[], bool] | None = None,
    ) -> Iterator[Prediction]:
        """Learners take turns on ``fit``; emit when the score on ``valid`` improves.

        ``once``: stop after the first prediction (the quick stage, or no hold-out).
        ``full``: every training row, for refits of converged learners (step 5).
        ``later``: learners started one at a time once the others have converged (step 6).
        ``until``: end the stage when it says so (checked between turns; each turn then
        gets at most QUICK_TURN seconds) and blend nothing (the quick stage)."""
        active = list(learners)
        waiting = list(later)
        self.pool = {}
        refits: dict[int, int] = {}  # id(clone refitted on full) -> id(its hold-out learner)
        later_started = False
        while active or waiting:
            if not active:
                active.append(waiting.pop(0))
                later_started = True
            for learner in list(active):
                left = self.budget.remaining()
                if left < MIN_STEP or (until is not None and until()):
                    return
                if later_started and self.stale():
                    self.converged = f"no hold-out gain of {GAIN:g} since {self.gained_at:.1f}s"
                    return
                if (
                    full is not None
                    and valid is not None
                    and len(valid.labels) >= PERFECT_ROWS
                    and self.settle(active, waiting, refits)
                ):
                    self.converged = "perfect hold-out score"
                    break  # ``active`` changed: the next round goes over what is left
                seconds = left * (1 - RESERVE) / len(active)
                if until is not None:
                    seconds = min(seconds, QUICK_TURN)
                if id(learner) in refits and full is not None:
                    yield from self.refit(learner, refits[id(learner)], full, seconds, active)
                    continue
                try:
                    t0 = time.monotonic()
                    with self.threads():
                        learner.fit(fit, seconds)
                    took = time.monotonic() - t0
                    self.spent[id(learner)] = self.spent.get(id(learner), 0.0) + took
                    score, p_valid = None, None
                    if valid is not None:
                        with self.threads():
                            p_valid = np.asarray(learner.predict_proba(valid.x), np.float64)
                        score = nauc(valid.labels, p_valid)
                    done = learner.done
                    self.say(
                        f"{learner.name}: fit {took:.2f}s, valid NAUC {_fmt(score)}{' (done)' if done else ''}"
                    )
                    if done or once:
                        active.remove(learner)
                    own = self.pool.get(id(learner))
                    better = self.best.beaten_by(score) or (
                        score is not None and (own is None or score > own.score)
                    )
                    test, unl = self.predict(learner) if better else (None, None)
                except Exception as e:  # a failing learner must not end the run
                    self.say(f"{learner.name} failed: {type(e).__name__}: {e}")
                    self.failed.add(id(learner))
                    active.remove(learner)
                    continue
                if better and test is not None:
                    if score is not None:
                        self.pool[id(learner)] = _Member(learner.name, score, p_valid, test, unl)
                    if self.best.beaten_by(score):
                        self.best = _Best(score, learner, True)
                        self.emitted(score)
                        yield Prediction(test, unl, learner.name, score, note)
                        if once:
                            return
                    if valid is not None and until is None:
                        yield from self.blend(valid, note)
                member = self.pool.get(id(learner))
                if done and full is not None and member is not None:
                    fresh = self._refit_copy(learner)
                    if fresh is not None:
                        refits[id(fresh)] = id(learner)
                        active.append(fresh)

    def _refit_copy(self, learner: Learner) -> Learner | None:
        """A fresh learner to refit on all rows: ``refit_copies`` seed copies averaged
        (`bag.Bag`), fewer when time is short, while more than three times what the
        copies cost on the hold-out split is left; None when not even one fits."""
        cost = 3 * self.spent[id(learner)]
        left = self.budget.remaining() - MIN_STEP
        k = min(learner.refit_copies, int(left // cost) if cost > 0 else learner.refit_copies)
        if k < 1:
            return None
        return clone(learner) if k == 1 else Bag(base=clone(learner), n=k)

    def blend(self, valid: Arrays, note: str) -> Iterator[Prediction]:
        """Emit a weighted mean of pool members when it beats the best emitted score.

        Greedy ensemble selection with replacement (Caruana et al., 2004): start from
        the best member, repeatedly add the member that most raises the hold-out NAUC.
        Only members whose hold-out error (1 - NAUC) is at most ``BLEND_ERROR`` times
        the best one's (or ``BLEND_SLACK``) take part: on a small hold-out a weak member
        can still raise the hold-out score by chance (osuleaf's 40 rows: an ensemble
        holding a 0.41 learner scored 0.952 there, 0.967 on test, while one of the
        strong members scored 0.98)."""
        members = sorted(self.pool.values(), key=lambda m: -m.score)
        if not members:
            return
        worst = max(BLEND_ERROR * (1 - members[0].score), BLEND_SLACK)
        members = [m for m in members if 1 - m.score <= worst]
        if len(members) < 2:
            return
        chosen = [members[0]]
        total, score = members[0].valid.copy(), members[0].score
        for _ in range(ENSEMBLE_ROUNDS):
            trials = [
                (nauc(valid.labels, (total + m.valid) / (len(chosen) + 1)), m) for m in members
            ]
            s, m = max(trials, key=lambda t: -np.inf if t[0] is None else t[0])
            if s is None or s <= score:
                break
            chosen.append(m)
            total, score = total + m.valid, s
        if len(chosen) < 2 or not self.best.beaten_by(score - ENSEMBLE_MARGIN):
            return
        k = len(chosen)
        test = sum(m.test for m in chosen) / k
        unl = None if chosen[0].unlabelled is None else sum(m.unlabelled for m in chosen) / k
        name = _ensemble_name(chosen)
        self.say(f"{name}: valid NAUC {score:.4f}")
        self.best = _Best(score, None, True, tuple(chosen))
        self.emitted(score)
        yield Prediction(test, unl, name, score, note)

    def refit(
        self, fresh: Learner, key: int, full: Arrays, seconds: float, active: list[Learner]
    ) -> Iterator[Prediction]:
        """One turn of a refit on all rows; once converged, its predictions replace the
        hold-out model's (in the pool, and re-emitted if the best prediction uses them)."""
        try:
            t0 = time.monotonic()
            with self.threads():
                fresh.fit(full, seconds)
            done = fresh.done
            self.say(
                f"{fresh.name}: refit on all {len(full)} rows, fit {time.monotonic() - t0:.2f}s"
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
        best = self.best
        if best.learner is not None and id(best.learner) == key:
            yield Prediction(test, unl, fresh.name, best.score, REFIT_NOTE)
        elif any(m is member for m in best.members):
            k = len(best.members)
            test = sum(m.test for m in best.members) / k
            unl = None if unl is None else sum(m.unlabelled for m in best.members) / k
            yield Prediction(test, unl, _ensemble_name(best.members), best.score, REFIT_NOTE)


def _ensemble_name(members: Sequence[_Member]) -> str:
    counts: dict[str, int] = {}
    for m in members:
        counts[m.name] = counts.get(m.name, 0) + 1
    return "ensemble(" + " + ".join(f"{c}x {n}" for n, c in counts.items()) + ")"


def _fmt(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.4f}"


def _length(split: Split) -> int | None:
    try:
        return len(split)
    except (TypeError, NotImplementedError):
        return None


def run(
    train: Split,
    test: Split,
    unlabelled: Split | None,
    budget: Budget,
    *,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    learners: Sequence[Learner] | None = None,
    later: Sequence[Learner] | None = None,
    threads: int | None = None,
    memory: int | None = None,
) -> Iterator[Prediction]:
    """Yield better and better predictions for ``test`` (and ``unlabelled``) within ``budget``.

    ``learners`` replaces the domain's plan and ``later`` its learners for the time left
    (tests, experiments; with ``learners`` and no ``later``, none); ``threads`` caps
    BLAS/OpenMP threads (default: every core this process may use); ``memory``
    bounds the bytes of the decoded splits (default `data.memory_budget`).
    """
    say = log or (lambda _m: None)
    spec = train.spec
    plan = list(learners) if learners is not None else PLANS[spec.domain](spec, seed)
    if later is None:
        later = [] if learners is not None else LATER.get(spec.domain, lambda *_: [])(spec, seed)
    if learners is None and spec.domain in ("image", "video") and pretrained.missing_note():
        say(pretrained.missing_note())
    if learners is None and spec.domain == "text" and (note := text.missing_note(spec)):
        say(note)
    # by default every core, but never more than the libraries were configured with
    n_threads = threads or min(cores(), configured())
    set_threads(n_threads)  # torch: the same count, outside threadpoolctl's reach
    limits = ThreadLimits(n_threads)

    n = _length(train)
    n_other = (_length(test) or 0) + ((_length(unlabelled) or 0) if unlabelled is not None else 0)
    with limits():
        reading = data_.plan_reading(train, n or 0, n_other, spec, memory or data_.memory_budget())
    if reading.note:
        say(reading.note)
    rows = reading.rows if reading.rows is not None else n
    quick = rows is not None and rows > 2 * QUICK_ROWS
    side = reading.side
    with limits():
        data = train.load(limit=QUICK_ROWS if quick else reading.rows, max_side=side)
        test_x = test.load(max_side=side).x
        unl_x = (
            unlabelled.load(max_side=side).x
            if unlabelled is not None and _length(unlabelled) != 0
            else None
        )
    say(
        f"loaded {len(data)}{f' of {n}' if len(data) != n else ''} train rows, {len(test_x)} test rows in {budget.elapsed():.2f}s"
    )
    state = _Run(test_x, unl_x, len(test_x), spec.output_dim, budget, say, limits)
    rng = np.random.default_rng(seed)

    if len(data) < MIN_ROWS:
        yield from state.stage(plan, data, None, once=True, note="no hold-out: too few rows")
        return
    blocks = spec.domain == "text"
    mask = _holdout(data.labels, rng, blocks=blocks)
    if quick:
        # the rest is read in the background while copies of the plan train on the prefix
        rest = data_.Background(train, limit=reading.rows, max_side=side)
        quick_note = f"quick model on the first {len(data)} training rows"
        yield from state.stage(
            [clone(lr) for lr in plan],
            _rows(data, ~mask),
            _rows(data, mask),
            note=quick_note,
            until=rest.done,
        )
        data = rest.result()
        mask = _holdout(data.labels, rng, prefix=mask, blocks=blocks)
        if state.best.learner is not None:  # re-score the emitted model on the new hold-out
            valid = _rows(data, mask)
            try:
                with limits():
                    state.best.score = nauc(valid.labels, state.best.learner.predict_proba(valid.x))
            except Exception as e:
                say(f"{state.best.learner.name}: re-scoring failed: {type(e).__name__}: {e}")
        say(f"loaded {len(data)} train rows at {budget.elapsed():.2f}s")
    yield from state.stage(plan, _rows(data, ~mask), _rows(data, mask), full=data, later=later)
    if budget.remaining() >= MIN_STEP:  # ended by itself: say so (ingestion sees "done")
        why = state.converged or "every learner has converged"
        say(f"converged at {budget.elapsed():.1f}s ({why}); ending the run")
