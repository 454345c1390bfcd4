"""Ensemble blending (loop step 4): greedy ensemble selection over the learners' best states.

The loop keeps each learner's best state so far as a `Member` (hold-out, test and
unlabelled predictions). `select` is greedy ensemble selection with replacement
(Caruana et al., 2004): start from the best member, repeatedly add the member that
most raises the hold-out NAUC of the members' mean, for at most ``ENSEMBLE_ROUNDS``.
Only members whose hold-out error (1 - NAUC) is at most ``BLEND_ERROR`` times the
best one's (or ``BLEND_SLACK``) take part: on a small hold-out a weak member can
still raise the hold-out score by chance (osuleaf's 40 rows: an ensemble holding a
0.41 learner scored 0.952 there, 0.967 on test, while one of the strong members
scored 0.98). The loop emits the blend only when it beats the emitted score by
``ENSEMBLE_MARGIN``.

>>> import numpy as np
>>> y = np.eye(2)[[0, 1, 0, 1, 0, 1]]  # two learners, each ranking one row wrong
>>> pa = np.array([[.9, .1], [.2, .8], [.6, .4], [.7, .3], [.8, .2], [.3, .7]])
>>> pb = np.array([[.6, .4], [.3, .7], [.9, .1], [.4, .6], [.45, .55], [.5, .5]])
>>> pool = [Member(n, holdout_nauc(y, p), p, p, None) for n, p in (("a", pa), ("b", pb))]
>>> [round(m.score, 3) for m in pool]
[0.778, 0.778]
>>> chosen, score = select(pool, y)
>>> name(chosen), score
('ensemble(1x a + 1x b)', 1.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from autodl.engine.holdout import Judged, holdout_nauc

ENSEMBLE_ROUNDS = 10  # members added (with replacement) by greedy ensemble selection
ENSEMBLE_MARGIN = 1e-4  # hold-out NAUC an ensemble must gain over the best to be emitted
BLEND_ERROR = 3.0  # ensemble members: hold-out error at most this times the best one's
BLEND_SLACK = 0.005  # ... or at most this error


@dataclass
class Member:
    """A learner's best state so far: hold-out, test and unlabelled predictions."""

    name: str
    score: float
    valid: np.ndarray
    test: np.ndarray
    unlabelled: np.ndarray | None
    judged: Judged | None = None  # its hold-out record (`holdout.judge`)


def select(pool: Sequence[Member], labels: np.ndarray) -> tuple[list[Member], float] | None:
    """The members picked (with repeats) and their mean's hold-out NAUC on ``labels``;
    None when fewer than two members are strong enough or none adds to the best."""
    members = sorted(pool, key=lambda m: -m.score)
    if not members:
        return None
    worst = max(BLEND_ERROR * (1 - members[0].score), BLEND_SLACK)
    members = [m for m in members if 1 - m.score <= worst]
    if len(members) < 2:
        return None
    chosen = [members[0]]
    total, score = members[0].valid.copy(), members[0].score
    for _ in range(ENSEMBLE_ROUNDS):
        trials = [(holdout_nauc(labels, (total + m.valid) / (len(chosen) + 1)), m) for m in members]
        s, m = max(trials, key=lambda t: -np.inf if t[0] is None else t[0])
        if s is None or s <= score:
            break
        chosen.append(m)
        total, score = total + m.valid, s
    return (chosen, score) if len(chosen) >= 2 else None


def mean(members: Sequence[Member]) -> tuple[np.ndarray, np.ndarray | None]:
    """The members' mean test and unlabelled predictions (a pick counts once per repeat)."""
    k = len(members)
    test = sum(m.test for m in members) / k
    unl = None if members[0].unlabelled is None else sum(m.unlabelled for m in members) / k
    return test, unl


def name(members: Sequence[Member]) -> str:
    """``ensemble(2x a + 1x b)``: each member's name with its count, in order of first pick."""
    counts: dict[str, int] = {}
    for m in members:
        counts[m.name] = counts.get(m.name, 0) + 1
    return "ensemble(" + " + ".join(f"{c}x {n}" for n, c in counts.items()) + ")"
