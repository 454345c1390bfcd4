"""Scoring, as the official AutoDL scorer (``score.py`` v20191219) computes it.

NAUC per prediction (`metrics`), the learning curve and its ALC (`curve`), where the
last counted prediction fails: confusion matrix, per-class table, ROC and PR curves
(`diagnostics`), the figures and the HTML report (`report`). Everything is a pure function of
the solution, the predictions with their times and the time budget.
`key_value_text` writes the ``key: value`` files of a prediction folder (start.txt,
end.txt) as the scorer reads them back; ingestion writes them with it.

>>> import numpy as np
>>> solution = np.array([[1, 0], [0, 1], [1, 0]])
>>> result = score_arrays(solution, [solution * 0.9], [5.0], time_budget=60)
>>> result.final_nauc, round(result.alc, 4)
(1.0, 0.8845)
"""

from autodl.scoring._keyvalue import key_value_text
from autodl.scoring._result import ScoreResult, read_scores_txt, write_scores
from autodl.scoring._score import Scorer, score, score_arrays

__all__ = [
    "ScoreResult",
    "Scorer",
    "key_value_text",
    "read_scores_txt",
    "score",
    "score_arrays",
    "write_scores",
]
