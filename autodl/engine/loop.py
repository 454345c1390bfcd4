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
   With fewer than ``folds.KFOLD_ROWS`` (2,000; 4,000 tabular, `folds.rows_below`) rows
   a fifth is too few rows to choose by (issue 14: on ~10 held-out clips, later
   predictions scoring 1.000 scored 0.91 on the test set against the first one's 0.99):
   every learner is cross-validated instead (`folds.Folds`, ``folds.FOLDS`` = 5 folds,
   `holdout.folds`: stratified, runs of rows for text), and scored on every row's
   out-of-fold prediction; its test prediction is the folds' mean. A learner's first
   turn fits fold 0 alone, so the first prediction costs what a hold-out model costs;
   its record covers that fold's rows, and such partial records (the first round of
   turns) are compared with one another on those rows but never replace a record on
   every row; when the emitted learner's folds are all fitted, their mean replaces it
   (``turns.FOLDS_NOTE``). Folds cost k fits a turn and are not refitted (step 5).
3. Learners take turns, cheapest first (`Schedule.take_turns`): each ``fit`` call gets an
   equal share of the remaining time among the learners still running, and continues
   (warm start) where it left off. After each call the learner is scored; the test
   (and unlabelled) prediction of the same model is emitted only when the score
   beats the last emitted one by more than the noise of the paired difference (two
   standard errors, DeLong; `Schedule.turn`, `Schedule.offer`); a score equal within
   that noise is decided by what users act on (top-1 accuracy or F1, log loss: worse
   by one standard error loses, better by two wins), else kept with the emitted one
   (`holdout.prefer`: ties stay, issue 14.4), and every emitted prediction is
   calibrated on the hold-out (`calibrate`: each column's AUC unchanged). A learner
   that raises is logged and dropped. A learner dominated for ``DOMINATED``
   consecutive turns (its best hold-out score below another learner's, by more than
   its last turn gained, and not in the emitted prediction) gives its time to the
   others: it takes no more turns (`Schedule.dominated`, logged). On large data the
   plan is the domain's ``SCALE`` (`tabular.at_scale`, `image.at_scale`: above their
   ``LARGE_ROWS``, the linear models on a subsample and the strong learners right
   after the first linear model). Each learner gets the loop's thread count in its
   ``threads`` attribute before every ``fit`` (LightGBM's ``num_threads``, the
   forest's ``n_jobs``).
4. Ensemble: each learner's best state so far (hold-out, test and unlabelled
   predictions, a `blend.Member`) is kept; after each improvement, greedy ensemble
   selection with replacement over the strong ones (`blend.select`) is emitted when
   its hold-out NAUC beats the last emitted score by ``blend.ENSEMBLE_MARGIN``
   (`Schedule.ensemble`).
5. Refit: a learner that has converged (and has a hold-out score) is refitted on all
   training rows (hold-out included) when more than three times what it has spent is
   left, unless it cannot enter the emitted prediction (another learner scores higher
   and it is not in the emitted ensemble: `Schedule.can_enter`, asked again before
   each refit turn; logged): a fresh clone of its configuration that takes turns with the other learners;
   for a learner whose ``refit_copies`` is k > 1 (LightGBM), the mean of up to k seed
   copies (`bag.Bag`, as many as three times their cost allows). Once the refit has
   converged, its test and unlabelled predictions replace the hold-out model's in the pool; ensemble selection still works on
   hold-out predictions, so a refitted member keeps the weight its hold-out model
   earned. If the emitted prediction is that learner, or an ensemble holding it, it is
   emitted again with the refitted predictions, the same hold-out score and a note
   (`Schedule.refit_copy`, `Schedule.refit_turn`). An emitted ensemble holding an
   earlier state of that learner (taken before it converged) takes the converged,
   refitted state in its place unless that makes it worse on the hold-out by more
   than the noise (`Schedule.refitted_ensemble`: cityweather's final top-1 0.971 ->
   0.985, NAUC 0.9971 -> 0.9987 at 60 s). We
   refit because the sample datasets are small (a fifth more rows is worth more than
   the risk of an unvalidated refit: on cityweather, emailspam and moviegenres a
   converged LightGBM refitted on all rows scored 0.0003-0.03 more test NAUC), as
   AutoML systems usually do (FLAML's ``retrain_full``, AutoGluon's ``refit_full``).
   Refits used to wait until every learner was done, which within a minute on two
   cores rarely happened, and never followed an ensemble.
6. Later: when every learner (refits included) has converged and time is left, the
   domain's ``LATER`` learners (tabular: `bag.Bag`, seed-averaged copies of the plan's
   best kinds of learner; speech: extremely randomised trees on the spectral
   features) run one at a time, scored, emitted and blended like the others.
7. Converged: the run ends before the deadline (the engine sends "done", the job's
   worker is free) when nothing left can raise the emitted hold-out score: every
   learner, refit and later learner has converged; or the emitted score is a perfect
   1.0 on a hold-out of at least ``PERFECT_ROWS`` rows (nothing can beat it: only the
   emitted model's own refit still runs, `Schedule.settle`); or, once
   the later learners have started, the emitted score has not gained ``GAIN`` for
   ``STALE`` times the time it took to reach it (on ALC's log time axis a stretch as
   long as the whole run so far, where a late gain would count for little), counted
   from the later learners' start at the earliest, so that they get their turns
   (`Schedule.stale`). ALC holds the last score to the deadline, so an early end does not
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
from autodl.engine import folds, holdout, image, pretrained, speech, tabular, text, video
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
LATER: dict[str, Callable[[DatasetSpec, int], list[Learner]]] = {
    "tabular": tabular.later,
    "speech": speech.later,
}
# the plan for the data's size (step 3: large data)
SCALE: dict[str, Callable[[list[Learner], int], list[Learner]]] = {
    "tabular": tabular.at_scale,
    "image": image.at_scale,
}


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
    # learners meant for one kind of labels only (``only``, tabular.plan) stay out of the other
    one = len(data) and bool((np.asarray(data.labels).sum(axis=1) == 1).all())
    other = "multi-label" if one else "single-label"
    plan = [lr for lr in plan if getattr(lr, "only", None) != other]
    later = [lr for lr in later if getattr(lr, "only", None) != other]
    if learners is None and spec.domain in SCALE:  # step 3: the plan for the data's size
        scaled = SCALE[spec.domain](plan, rows or len(data))
        if [lr.name for lr in scaled] != [lr.name for lr in plan]:
            say(f"{rows} training rows: plan {', '.join(lr.name for lr in scaled)}")
        plan = scaled
    state = Schedule(test_x, unl_x, len(test_x), spec.output_dim, budget, say, limits)
    state.side = side  # the saved model loads new examples the same way
    rng = np.random.default_rng(seed)

    if len(data) < MIN_ROWS:
        yield from state.one_prediction(plan, data, "no hold-out: too few rows")
        return
    blocks = spec.domain == "text"
    if not quick and len(data) < folds.rows_below(spec.domain):  # step 2: k-fold on small data
        assign = holdout.folds(data.labels, folds.FOLDS, rng, blocks=blocks)
        plan, later = folds.wrap(plan, assign), folds.wrap(later, assign)
        say(f"{folds.FOLDS}-fold cross-validation on {len(data)} training rows")
        yield from state.take_turns(plan, data, data, full=data, later=later)
        _ended(state, budget, say)
        return
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
    _ended(state, budget, say)


def _ended(state: Schedule, budget: Budget, say: Callable[[str], None]) -> None:
    if budget.remaining() >= MIN_STEP:  # ended by itself: say so (ingestion sees "done")
        why = state.converged or "every learner has converged"
        say(f"converged at {budget.elapsed():.1f}s ({why}); ending the run")
