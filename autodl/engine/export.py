"""The model behind an emitted prediction, and how it is written to and read from disk.

Every `turns.Prediction` the loop emits carries a `Recipe`: the learners that made it
(one, the copies of a refit `bag.Bag`, or an ensemble's members with their weights)
and the calibration its scores went through (`calibrate`). ``Recipe.apply(x)`` on the
same raw examples gives the emitted test scores (``scores``) and unlabelled
probabilities (``probabilities``) again.

An ensemble may hold a member whose learner has trained on since its predictions were
taken (a later turn that scored lower): `turns.Schedule` freezes such a learner
(`freeze`, bytes) before that turn, and the recipe holds the frozen bytes instead.

On disk (`write`), a model is a folder: ``model.json`` (what it is, the parts and their
weights, the calibration, the spec, scores, versions), ``calibration.npz`` (arrays,
no pickle) and one ``part-<i>.pkl`` per learner. The learners are pickled, without
their training data (`TRANSIENT`) and featurisers' caches: they hold LightGBM boosters,
scikit-learn estimators, torch networks and fitted featurisers of every kind, and
pickle is the one format that holds them all. Pickle runs code when loaded: load only
models you trust (``model.json`` says ``"pickled": true``). `read` refuses a model
written by another format version or by other major.minor versions of the libraries
that pickled it (`check_versions`).
"""

from __future__ import annotations

import io
import json
import os
import pickle
import platform
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from autodl.engine.calibrate import Calibration
from autodl.engine.learner import Features, Learner, RawX
from autodl.formats.types import DatasetSpec

FORMAT = 1  # the layout of a model folder; `read` refuses another
MODEL_JSON = "model.json"
#: attributes holding training data, optimiser state or caches: not saved
TRANSIENT = frozenset(
    {
        "_data",
        "_x",
        "_y",
        "_train_feats",
        "_train_maps",
        "_probe_data",
        "_sub",
        "_texts",
        "_opt",
        "_feats",
        "_maps",
        "_order",
        "_t",
        "_weight",
        "_gen",
    }
)
#: the libraries whose objects the parts pickle: their major.minor must match to load
PACKAGES = ("numpy", "scipy", "scikit-learn", "lightgbm", "torch")
PICKLE_WARNING = "the parts are pickled: load only models you trust"


@dataclass
class Recipe:
    """What made one emitted prediction: ``parts`` (a `Learner`, or its frozen bytes)
    with their weights (summing to 1), and the calibration of its scores."""

    parts: list[tuple[Learner | bytes, float]]
    names: list[str]
    calibration: Calibration | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, learners: list[Learner | bytes | None], names: list[str]) -> Recipe | None:
        """Equal weight per pick (an ensemble's repeats count); None when one is unknown."""
        if not learners or any(lr is None for lr in learners):
            return None
        counts: Counter[int] = Counter(id(lr) for lr in learners)
        parts, seen, kept = [], set(), []
        for lr, name in zip(learners, names, strict=True):
            if id(lr) in seen:
                continue
            seen.add(id(lr))
            parts.append((lr, counts[id(lr)] / len(learners)))
            kept.append(name)
        return cls(parts, kept)

    def raw(self, x: RawX) -> np.ndarray:
        """The parts' weighted mean ``predict_proba`` (what the loop calibrates)."""
        total = None
        for part, w in self.parts:
            learner = thaw(part) if isinstance(part, bytes) else part
            p = np.clip(np.asarray(learner.predict_proba(x), np.float64), 0, 1)
            total = w * p if total is None else total + w * p
        return total

    def snapshot(self) -> list[tuple[bytes, float]]:
        """Each part as bytes (`freeze`) now, before the loop trains it on."""
        return [(p if isinstance(p, bytes) else freeze(p), w) for p, w in self.parts]


# ---- pickling without training data --------------------------------------------------


def _new(cls: type) -> Any:
    """An empty instance; pickle then sets its ``__dict__`` (after memoising it, so that
    a learner whose featuriser calls one of its methods refers back to it)."""
    return cls.__new__(cls)


def _shared_encoder(max_tokens: int) -> Any:
    from autodl.engine.sentences import Encoder

    return Encoder.shared(max_tokens)


def _none() -> None:
    return None


def _booster(model: str) -> Any:
    import lightgbm as lgb

    return lgb.Booster(model_str=model)


def _cpu_tensor(t: Any, parameter: bool, requires_grad: bool) -> Any:
    import torch

    return torch.nn.Parameter(t, requires_grad=requires_grad) if parameter else t


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        torch = sys.modules.get("torch") if kind.__module__.startswith("torch") else None
        if torch is not None and isinstance(obj, torch.Tensor) and obj.is_cuda:
            # saved for any machine: a model trained on a GPU loads without one (`place`)
            parameter = isinstance(obj, torch.nn.Parameter)
            return _cpu_tensor, (obj.detach().cpu(), parameter, obj.requires_grad)
        if kind.__module__.startswith("lightgbm"):
            if kind.__name__ == "Booster":  # its text model (`model_to_string`)
                return _booster, (obj.model_to_string(num_iteration=-1),)
            if kind.__name__ == "Dataset":  # binned training rows: not needed to predict
                return _none, ()
        if isinstance(obj, Learner):
            state = {k: v for k, v in vars(obj).items() if k not in TRANSIENT}
            return _new, (type(obj),), state
        if isinstance(obj, Features):  # without its cache of featurised splits
            return _new, (Features,), {**vars(obj), "_memo": {}}
        if kind.__name__ == "Encoder" and kind.__module__ == "autodl.engine.sentences":
            for (_path, max_tokens), enc in kind._shared.items():
                if enc is obj:  # the installed sentence encoder: loaded again, not copied
                    return _shared_encoder, (max_tokens,)
        return NotImplemented


def freeze(learner: Learner) -> bytes:
    """The learner as bytes (pickle, without its training data and caches)."""
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(learner)
    return buf.getvalue()


def thaw(data: bytes) -> Learner:
    """A learner from `freeze`'s bytes (runs pickle: trusted bytes only), its torch
    modules on this machine's device (`place`)."""
    learner = pickle.loads(data)  # noqa: S301 - our own files; see the module doc
    place(learner)
    return learner


def place(obj: Any) -> None:
    """Move the torch modules and tensors a thawed learner holds to the engine's device
    (saved on the CPU; the learners move their inputs to ``_torch.DEVICE``). Without
    torch loaded, or on a CPU-only machine, there is nothing to move."""
    import sys

    if "torch" not in sys.modules:
        return
    import torch

    from autodl.engine._torch import DEVICE

    if DEVICE.type == "cpu":
        return
    seen: set[int] = set()

    def walk(o: Any, depth: int) -> Any:
        if id(o) in seen or depth > 6:
            return o
        seen.add(id(o))
        if isinstance(o, torch.nn.Module):
            return o.to(DEVICE)
        if isinstance(o, torch.Tensor):
            return o.to(DEVICE)
        if isinstance(o, Learner | Features):
            for k, v in list(vars(o).items()):
                setattr(o, k, walk(v, depth + 1))
        elif isinstance(o, dict):
            for k, v in list(o.items()):
                o[k] = walk(v, depth + 1)
        elif isinstance(o, list):
            o[:] = [walk(v, depth + 1) for v in o]
        return o

    walk(obj, 0)


# ---- the folder ------------------------------------------------------------------------


def versions() -> dict[str, str | None]:
    """The versions that matter to load a model: ours, Python's and `PACKAGES`'."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("autodl-selfservice", *PACKAGES):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _major_minor(v: str | None) -> tuple[str, ...] | None:
    return None if v is None else tuple(v.split("+")[0].split(".")[:2])


def check_versions(recorded: dict[str, Any], where: str) -> list[str]:
    """What differs between ``recorded`` and this installation (empty: compatible)."""
    here = versions()
    problems = []
    for name in PACKAGES:
        want = recorded.get(name)
        if want is None:
            continue
        have = here.get(name)
        if _major_minor(want) != _major_minor(have):
            problems.append(f"{name} {want} (installed: {have or 'none'})")
    want_py = recorded.get("python")
    if want_py and _major_minor(want_py) != _major_minor(here["python"]):
        problems.append(f"Python {want_py} (running: {here['python']})")
    return problems


def spec_json(spec: DatasetSpec) -> dict[str, Any]:
    """The dataset's spec as ``model.json`` holds it."""
    return {
        "name": spec.name,
        "domain": spec.domain,
        "shape": list(spec.shape),
        "output_dim": spec.output_dim,
        "format": spec.format,
        "label_names": spec.label_names,
        "vocabulary": spec.vocabulary,
    }


def write(
    folder: Path,
    parts: list[tuple[bytes, float]],
    names: list[str],
    calibration: Calibration,
    info: dict[str, Any],
) -> None:
    """Write a model folder at ``folder``, atomically: a temporary sibling, then a rename
    (an existing ``folder`` is replaced)."""
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}-{time.monotonic_ns()}")
    tmp.mkdir(parents=True)
    try:
        files = []
        for i, (data, weight) in enumerate(parts):
            name = f"part-{i}.pkl"
            (tmp / name).write_bytes(data)
            files.append({"file": name, "learner": names[i], "weight": weight, "bytes": len(data)})
        np.savez(
            tmp / "calibration.npz",
            a=np.asarray(calibration.a, np.float64),
            b=np.asarray(calibration.b, np.float64),
        )
        doc = {
            "autodl_model": FORMAT,
            "kind": "ensemble" if len(parts) > 1 else "learner",
            **info,
            "parts": files,
            "calibration": {
                "file": "calibration.npz",
                "multiclass": bool(calibration.multiclass),
                "identity": bool(calibration.identity),
            },
            "pickled": True,
            "warning": PICKLE_WARNING,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": versions(),
        }
        (tmp / MODEL_JSON).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        if folder.exists():
            old = folder.with_name(f".{folder.name}.old-{os.getpid()}-{time.monotonic_ns()}")
            folder.rename(old)
            tmp.rename(folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def annotate(folder: Path, **fields: Any) -> None:
    """Add ``fields`` to ``folder``'s ``model.json`` (e.g. the test score, known after
    scoring), atomically."""
    path = Path(folder) / MODEL_JSON
    doc = {**json.loads(path.read_text(encoding="utf-8")), **fields}
    tmp = path.with_name(f".{MODEL_JSON}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(path)


def read_json(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / MODEL_JSON).read_text(encoding="utf-8"))


def read(folder: Path, doc: dict[str, Any]) -> Recipe:
    """The recipe of the model folder ``folder`` whose ``model.json`` is ``doc`` (checked
    by the caller: `check_versions`)."""
    folder = Path(folder)
    parts, names = [], []
    for p in doc["parts"]:
        parts.append((thaw((folder / p["file"]).read_bytes()), float(p["weight"])))
        names.append(str(p["learner"]))
    cal = doc["calibration"]
    with np.load(folder / cal["file"], allow_pickle=False) as arrays:
        calibration = Calibration(
            arrays["a"].copy(), arrays["b"].copy(), bool(cal["multiclass"]), bool(cal["identity"])
        )
    return Recipe(parts, names, calibration)
