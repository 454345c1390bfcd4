"""The anytime loop: schedule the domain's learners, emit a prediction when it is better.

``run(train, test, unlabelled, budget)`` is a generator of `Prediction`s:

1. Load the data (`data`): images at most 128 px per side on CPU (224 on CUDA), and
   within a memory bound (smaller images, then fewer training rows; the run log says
   so). On a large train split (more than ``2 * QUICK_ROWS`` rows) the first
   ``QUICK_ROWS`` rows are loaded alone and copies of the plan's learners take turns
   on them (``QUICK_TURN`` seconds at most, ``FIRST_TURN`` until the first
   prediction is out; no ensembles), for early predictions,
   while the rest is read in a background thread, started once the first prediction
   is out (the reader holds the GIL: beside the first fit it delayed that prediction);
   then the plan starts on all rows (`Schedule.quick`).
2. Hold out a fifth of the rows (`holdout`: stratified on each row's first positive
   class; runs of consecutive rows for text). The validation score is
   `holdout.holdout_nauc`, NAUC = 2 * AUC - 1, macro over the classes with both
   values in the hold-out. When the full split replaces the quick prefix, the
   hold-out keeps the prefix's hold-out rows and adds rows the quick model never saw,
   and the emitted model is re-scored on it, so scores stay comparable and honest
   (`Schedule.rescore`). With fewer than ``MIN_ROWS`` rows there is no hold-out: the
   first learner that fits gives the one prediction (`Schedule.one_prediction`).
3. Learners take turns, cheapest first (`Schedule.take_turns`): each ``fit`` call gets an
   equal share of the remaining time among the learners still running, and continues
   (warm start) where it left off. After each call the learner is scored; the test
   (and unlabelled) prediction of the same model is emitted only when the score
   beats the last emitted one (`Schedule.turn`, `Schedule.offer`); a score equal within
   its noise is decided by what users act on (top-1 accuracy or F1, log loss), then
   kept with the emitted one (`holdout.prefer`), and every emitted prediction is
   calibrated on the hold-out (`calibrate`: each column's AUC unchanged). A learner
   that raises is logged and dropped.
4. Ensemble: each learner's best state so far (hold-out, test and unlabelled
   predictions, a `blend.Member`) is kept; after each improvement, greedy ensemble
   selection with replacement over the strong ones (`blend.select`) is emitted when
   its hold-out NAUC beats the last emitted score by ``blend.ENSEMBLE_MARGIN``
   (`Schedule.ensemble`).
5. Refit: a learner that has converged (and has a hold-out score) is refitted on all
   training rows (hold-out included) when more than three times what it has spent is
   left: a fresh clone of its configuration that takes turns with the other learners;
   for a learner whose ``refit_copies`` is k > 1 (LightGBM), the mean of up to k seed
   copies (`bag.Bag`, as many as three times their cost allows). Once the refit has
   converged, its test and unlabelled predictions replace the hold-out model's in the pool; ensemble selection still works on
   hold-out predictions, so a refitted member keeps the weight its hold-out model
   earned. If the emitted prediction is that learner, or an ensemble holding it, it is
   emitted again with the refitted predictions, the same hold-out score and a note
   (`Schedule.refit_copy`, `Schedule.refit_turn`). We
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
   emitted model's own refit still runs, `Schedule.settle`); or, once
   the later learners have started, the emitted score has not gained ``GAIN`` for
   ``STALE`` times the time it took to reach it (on ALC's log time axis a stretch as
   long as the whole run so far, where a late gain would count for little;
   `Schedule.stale`). ALC holds the last score to the deadline, so an early end does not
   lower it.

The steps are `turns.Schedule`'s methods (named above), with the constants they
use; `holdout` and `blend` are steps 2 and 4 on their own. `run` below loads the data
and calls the phases in order.

The budget is checked before every step and no step is started with less than
``MIN_STEP`` seconds left; ingestion kills the process at the deadline regardless.
OpenMP and numpy's BLAS use ``threads`` threads (all cores by default) during steps
only, any other BLAS (scipy's) one thread (`_threads.ThreadLimits`: two busy-waiting
OpenBLAS pools made logistic regression 2-5x slower); torch gets the same count
(`_torch.set_threads`), and learners run one at a time, so torch, LightGBM and BLAS
never oversubscribe the cores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from autodl.engine import data as data_
from autodl.engine import holdout, image, pretrained, speech, tabular, text, video
from autodl.engine._threads import ThreadLimits, controller, cores
from autodl.engine._torch import set_threads
from autodl.engine.budget import Budget
from autodl.engine.learner import Learner, clone
from autodl.engine.turns import MIN_STEP, Prediction, Schedule
from autodl.formats.types import DatasetSpec, Split

QUICK_ROWS = 2000
MIN_ROWS = 20  # fewer training rows: no hold-out, one prediction from the first learner

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
    torch, BLAS and OpenMP threads (None or 0: every core this process may use; the
    engine contract, `autodl.engine.protocol`); ``memory``
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
    n_threads = threads or cores()  # the argument, never read back from the libraries
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
    if len(data) and bool((np.asarray(data.labels).sum(axis=1) == 1).all()):
        # one class per row: learners meant for multi-label data stay out (tabular.plan)
        plan = [lr for lr in plan if not getattr(lr, "multilabel_only", False)]
        later = [lr for lr in later if not getattr(lr, "multilabel_only", False)]
    state = Schedule(test_x, unl_x, len(test_x), spec.output_dim, budget, say, limits)
    rng = np.random.default_rng(seed)

    if len(data) < MIN_ROWS:
        yield from state.one_prediction(plan, data, "no hold-out: too few rows")
        return
    blocks = spec.domain == "text"
    mask = holdout.draw(data.labels, rng, blocks=blocks)  # step 2
    if quick:  # step 1: copies of the plan train on the prefix while the rest is read
        # the reader holds the GIL: start it once the first prediction is out
        rest = data_.Background(train, start=False, limit=reading.rows, max_side=side)
        note = f"quick model on the first {len(data)} training rows"
        clones = [clone(lr) for lr in plan]
        for p in state.quick(clones, *holdout.split(data, mask), note, until=rest.done):
            yield p
            rest.start()
        data = rest.result()
        mask = holdout.draw(data.labels, rng, prefix=mask, blocks=blocks)
        state.rescore(data, mask)
        say(f"loaded {len(data)} train rows at {budget.elapsed():.2f}s")
    yield from state.take_turns(plan, *holdout.split(data, mask), full=data, later=later)
    if budget.remaining() >= MIN_STEP:  # ended by itself: say so (ingestion sees "done")
        why = state.converged or "every learner has converged"
        say(f"converged at {budget.elapsed():.1f}s ({why}); ending the run")
