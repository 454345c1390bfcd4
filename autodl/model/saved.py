"""`load_model` and `Model`: a run's saved model, applied to new examples.

A run saves the model of its last counted prediction in ``OUTPUT/model/``
(`autodl.engine.export` writes it; docs/cli.md, autodl predict); `load_model` reads that folder,
or a zip of it, checks its format version and the versions of the libraries that
pickled it, and returns a `Model`:

- ``predict_proba(examples)``: probabilities (rows summing to 1 for multi-class), as the
  run's ``unlabelled/predictions.csv``;
- ``predict_scores(examples)``: the calibrated scores the run recorded for its test split
  (``predictions/<task>.predict_<k>``; each column's ranking is the model's);
- ``predict(examples)``: the top class's name for multi-class, 0/1 per class for
  multi-label (probability at least 0.5);

``examples`` are float32 arrays in the dataset's (T, H, W, C) layout (one array
(N, T, H, W, C), or a list of (T, H, W, C)) on the scale the run's reader gave
(pixels 0..1 for images and videos from files: a COMPRESSED dataset's), a path to an
AutoDL dataset (its unlabelled split, else its test split), or raw data that
``autodl format`` reads for the model's domain (`autodl.model.inputs`). Integer
arrays for a model of COMPRESSED data are pixels 0..255 (``np.asarray(PIL image)``)
and are divided by 255, as decoding the PNG would; other models take them as they
are. The parts are pickled: load only models
you trust (they load through an allow-list of globals, `autodl.engine.export.thaw`,
which refuses ``os.system`` and the like but does not make an untrusted model safe).
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import weakref
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from autodl.engine import export
from autodl.errors import FormatError, ModelError
from autodl.formats.types import DatasetSpec, stack_if_same_shape

BATCH = 256  # examples read, decoded and predicted at a time (streamed inputs)
MEMORY_BATCH = 8192  # examples predicted at a time from a split decoded in one pass


def load_model(path: str | os.PathLike, *, parts: bool = True) -> Model:
    """The saved model at ``path``: a run's ``model`` folder (holding ``model.json``), the
    run's output folder, or a zip of the model folder. Raises `ModelError` when it is
    not a model, is damaged, or was saved by versions this installation cannot load.

    ``parts=False`` reads ``model.json`` only (the spec, the format manifest): enough to
    check new data against the model (`check_input`), without unpickling the learners
    or importing their libraries; such a model cannot predict."""
    path = Path(path)
    tmp = None
    if path.is_file() and zipfile.is_zipfile(path):
        tmp = Path(tempfile.mkdtemp(prefix="autodl-model-"))
        try:
            folder = _unzip(path, tmp)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    elif path.is_dir() and not (path / export.MODEL_JSON).is_file() and (path / "model").is_dir():
        folder = path / "model"  # a run's output folder
    else:
        folder = path
    try:
        model = Model(folder, _read_doc(folder, path), parts=parts)
        model.source = path
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    if tmp is not None:
        weakref.finalize(model, shutil.rmtree, tmp, True)
    return model


def _unzip(path: Path, into: Path) -> Path:
    from autodl.formats.archive import ArchiveRefused, extract_zip

    try:
        names = extract_zip(path, into)
    except ArchiveRefused as e:
        raise ModelError(str(e), "Zip a run's model/ folder again.") from None
    names = [n for n in names if n.rstrip("/").endswith(export.MODEL_JSON)]
    if not names:
        raise ModelError(
            f"{path}: the zip holds no {export.MODEL_JSON}",
            "Zip a run's model/ folder (the service's Download model gives one).",
        )
    return (into / min(names, key=len)).parent


def _read_doc(folder: Path, shown: Path) -> dict[str, Any]:
    file = folder / export.MODEL_JSON
    if not file.is_file():
        raise ModelError(
            f"{shown}: not a saved model (no {export.MODEL_JSON})",
            "Give a run's model/ folder (autodl run saves it in OUTPUT/model/), or a zip of it.",
        )
    try:
        doc = export.read_json(folder)
        fmt = doc["autodl_model"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelError(f"{file}: not a readable model description ({e})") from None
    if fmt != export.FORMAT:
        raise ModelError(
            f"{file}: a model of format {fmt}; this version of autodl reads format {export.FORMAT}",
            "Load it with the autodl version that saved it, or train it again.",
        )
    problems = export.check_versions(doc.get("versions") or {}, str(file))
    if problems:
        raise ModelError(
            f"{file}: saved with {', '.join(problems)}; the pickled parts need the same "
            "major.minor versions to load safely",
            "Install those versions (pip install 'PACKAGE==X.Y.*'), or train the model again.",
        )
    return doc


class Model:
    """A saved model (see the module doc). ``spec``: the dataset's `DatasetSpec`;
    ``classes_``: the label names (``class_<i>`` where the dataset has none);
    ``info``: the ``model.json`` document; ``path``: its folder (a temporary one for a
    zip), ``source``: what was loaded (the zip, the run folder or the model folder).
    ``parts=False``: the description only (`load_model`); ``recipe`` is None and
    predicting raises `ModelError`."""

    def __init__(self, folder: Path, doc: dict[str, Any], *, parts: bool = True):
        self.path = Path(folder)
        self.source = self.path
        self.info = doc
        s = doc["spec"]
        self.spec = DatasetSpec(
            name=s["name"],
            shape=tuple(int(v) for v in s["shape"]),  # type: ignore[arg-type]
            output_dim=int(s["output_dim"]),
            format=s.get("format", "DENSE"),
            label_names=s.get("label_names"),
            vocabulary=s.get("vocabulary"),
            domain=s["domain"],
        )
        self.classes_ = np.asarray(
            self.spec.label_names or [f"class_{i}" for i in range(self.spec.output_dim)]
        )
        self.multilabel = not bool(doc["calibration"]["multiclass"])
        self.max_side: int | None = doc.get("max_side")
        self.manifest: dict[str, Any] | None = doc.get("manifest")
        self.recipe: export.Recipe | None = None
        if not parts:
            return
        try:
            self.recipe = export.read(self.path, doc)
        except (OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as e:
            raise ModelError(f"{self.path}: a part of the model does not load ({e})") from None
        except (ImportError, AttributeError) as e:
            raise ModelError(
                f"{self.path}: a part of the model needs code this installation lacks ({e})",
                "Load it with the autodl version that saved it (model.json: versions).",
            ) from None

    def __repr__(self) -> str:
        return (
            f"Model({self.info.get('learner')!r}, {self.spec.domain}, "
            f"{self.spec.output_dim} classes, from {self.path})"
        )

    # ---- examples in

    def prepare(self, examples: Any) -> Any:
        """Arrays in the (T, H, W, C) layout, checked against the spec and shrunk as the run
        loaded its data: what the learners take. Integer pixels (0..255) of a model of
        COMPRESSED data are divided by 255 (the reader's scale); values too large for
        float32 become inf (as a table's 1e400; the tabular learners read inf as NaN),
        without numpy's overflow warning."""
        from autodl.formats.images import shrink_float, to_float

        if isinstance(examples, np.ndarray) and examples.ndim == 4:
            examples = examples[None]
        fixed = self._fixed()
        if (
            isinstance(examples, np.ndarray)
            and examples.ndim in (1, 2)
            and all(d > 0 for d in self.spec.shape)
            and examples.shape[-1] == int(np.prod(fixed))
        ):
            # a table's rows (n, features), or one row, as scikit-learn takes them: the
            # (1, 1, features, 1) layout is the only one they can mean
            examples = examples.reshape(-1, *fixed)
        xs = []
        pixels = self.spec.format == "COMPRESSED"
        for i, x in enumerate(examples):
            x = np.asarray(x)
            with np.errstate(over="ignore", invalid="ignore"):
                if pixels and np.issubdtype(x.dtype, np.integer):
                    x = to_float(x)  # as the reader decodes a PNG
                else:
                    x = x.astype(np.float32, copy=False)
            self.check_shape(x.shape, f"example {i}")
            xs.append(shrink_float(x, self.max_side) if self.max_side else x)
        return stack_if_same_shape(xs) if xs else np.zeros((0, *self._fixed()), np.float32)

    def _fixed(self) -> tuple[int, ...]:
        return tuple(max(d, 1) for d in self.spec.shape)

    def expected(self) -> str:
        """The example shape the model expects, e.g. ``(1, 28, 28, 1)`` or ``(T, 1, 1, 1)``."""
        names = ("T", "H", "W", "C")
        return (
            "("
            + ", ".join(n if d < 0 else str(d) for n, d in zip(names, self.spec.shape, strict=True))
            + ")"
        )

    def check_shape(self, shape: tuple[int, ...], what: str, file: str | None = None) -> None:
        if len(shape) != 4 or any(
            want >= 0 and have != want for have, want in zip(shape, self.spec.shape, strict=False)
        ):
            raise FormatError(
                f"{what} has shape {tuple(shape)}; the model expects {self.expected()} "
                f"({self.spec.domain}, as its training data)",
                "Give examples in the layout of the dataset the model was trained on.",
                file=file,
            )

    def _batches(self, examples: Any):
        """(prepared arrays) per batch, whatever ``examples`` is."""
        if isinstance(examples, str | os.PathLike):
            from autodl.model.inputs import open_input

            with open_input(self, examples) as source:
                for _ids, xs in source.batches(MEMORY_BATCH if source.in_memory else BATCH):
                    yield xs
            return
        yield self.prepare(examples)

    # ---- predictions out

    def raw(self, x: Any) -> np.ndarray:
        """The parts' weighted mean before calibration, on prepared arrays."""
        return self._recipe().raw(x)

    def _recipe(self) -> export.Recipe:
        if self.recipe is None:
            raise ModelError(
                f"{self.path}: loaded without its parts (load_model(..., parts=False))",
                "Load it with load_model(path) to predict.",
            )
        return self.recipe

    def calibrate(self, raw: np.ndarray, how: str = "probabilities") -> np.ndarray:
        """``raw`` (`raw`, all the examples at once) through the run's calibration: the
        multi-class scores share one constant per matrix, so calibrate once, not per batch."""
        cal = self._recipe().calibration
        return cal.scores(raw) if how == "scores" else cal.probabilities(raw)

    def _apply(self, examples: Any, how: str) -> np.ndarray:
        out = [self.raw(x) for x in self._batches(examples) if len(x)]
        if not out:
            return np.zeros((0, self.spec.output_dim))
        return self.calibrate(np.concatenate(out), how)

    def predict_proba(self, examples: Any) -> np.ndarray:
        """Probabilities (n, classes): rows sum to 1 for multi-class."""
        return self._apply(examples, "probabilities")

    def predict_scores(self, examples: Any) -> np.ndarray:
        """The calibrated scores the run recorded for its test split (official .predict)."""
        return self._apply(examples, "scores")

    def predict(self, examples: Any) -> np.ndarray:
        """Multi-class: the top class's name per example; multi-label: 0/1 per class."""
        p = self.predict_proba(examples)
        if self.multilabel:
            return (p >= 0.5).astype(np.int8)
        return self.classes_[p.argmax(axis=1)] if len(p) else self.classes_[:0]
