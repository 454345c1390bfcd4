"""Our AutoDL solution: `run` yields better and better predictions within a `Budget`.

>>> from autodl.engine import Budget, run
>>> # for p in run(ds.train, ds.test, ds.unlabelled, Budget(60)): ...

The domain plans (`tabular`, `image`, `text`, `speech`, `video`) list `Learner`s,
cheapest first; `loop` schedules them. See DESIGN.md, section 3.
"""

from autodl.engine.budget import Budget
from autodl.engine.learner import Learner
from autodl.engine.loop import Prediction, run
from autodl.engine.warm import warm_up

__all__ = ["Budget", "Learner", "Prediction", "run", "warm_up"]
