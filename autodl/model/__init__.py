"""A run's saved model, used later: `load_model`, `predict_to_csv`, `check_input`.

Every run saves the model of its last counted prediction in ``OUTPUT/model/``
(`autodl.engine.export` writes it from the engine's process). This package reads it
back in any process, without the service or a GPU, and applies it to new data: arrays,
an AutoDL dataset, or raw data converted on the fly with the model's spec
(`autodl.model.inputs`). ``autodl predict`` is `predict_to_csv`; the service's
prediction jobs call `check_input` before queueing. The model's parts are pickled:
load only models you trust.

>>> model = load_model("runs/digits/model")               # doctest: +SKIP
>>> model.predict(["new/img1.png"])                       # doctest: +SKIP
"""

from autodl.model.predict import check_input, predict_to_csv
from autodl.model.saved import Model, load_model

__all__ = ["Model", "check_input", "load_model", "predict_to_csv"]
