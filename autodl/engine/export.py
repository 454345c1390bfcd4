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
no pickle), one ``part-<i>.pkl`` per learner and, for a learner holding torch tensors
(networks, ROCKET's kernels), ``part-<i>.safetensors``: its tensors, which the pickle
names by index (`_tensor`; dense CPU copies; ``model.json``'s part says ``"tensors"``).
The learners are pickled, without
their training data (`TRANSIENT`) and featurisers' caches: they hold LightGBM boosters
(as their text model), scikit-learn estimators, torch networks and fitted featurisers
of every kind, and pickle is the one format that holds them all. Pickle can run code
when loaded: load only models you trust (``model.json`` says ``"pickled": true`` and
what ``"loading"`` checks). `thaw` loads through `_Unpickler`, an allow-list: globals
only from `ALLOWED_PREFIXES` (the engine, numpy, scipy.sparse, scikit-learn, LightGBM,
torch.nn) and `ALLOWED_CLASSES`, no dotted or dunder names; while loading it calls only
classes and the reconstructors in `CALLABLE` (torch storages through torch's
weights-only loader, not torch's nested pickle); anything else is a `ModelError`
naming the global. It stops the known pickle gadgets (``os.system``, ``eval``,
``getattr``, ``subprocess``); it does not prove that no allowed class can be misused,
bound the memory a crafted file takes, or vet a featuriser function and its arguments,
which run at predict time. `read` refuses a model written by another format version or
by other major.minor versions of the libraries that pickled it (`check_versions`).
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
from autodl.errors import ModelError
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
        "_parts",
        "_texts",
        "_opt",
        "_feats",
        "_maps",
        "_order",
        "_t",
        "_weight",
        "_gen",
        "shared",
        "_cache",
        "_memo",
    }
)
#: the libraries whose objects the parts pickle: their major.minor must match to load
PACKAGES = ("numpy", "scipy", "scikit-learn", "lightgbm", "torch")
PICKLE_WARNING = "the parts are pickled: load only models you trust"
LOADING_NOTE = (
    "autodl.load_model unpickles the parts through an allow-list of globals (the engine, "
    "numpy, scipy.sparse, scikit-learn, LightGBM, torch.nn) and calls only classes and "
    "known reconstructors; it refuses anything else, but does not make an untrusted "
    "model safe"
)


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


def _tensor(index: int, parameter: bool, requires_grad: bool) -> Any:
    """Stands for tensor ``index`` of the part's safetensors; `_Unpickler` resolves it."""
    raise ModelError("a tensor reference outside autodl.engine.export.thaw")


#: a frozen learner holding torch tensors: MAGIC, the pickle's length (8 bytes, little
#: endian), the pickle (tensors as `_tensor` references), then the tensors (safetensors)
MAGIC = b"AUTODL-ST1\n"


class _Pickler(pickle.Pickler):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.tensors: list[Any] = []  # dense CPU copies, saved as safetensors by `freeze`

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        torch = sys.modules.get("torch") if kind.__module__.startswith("torch") else None
        if torch is not None and isinstance(obj, torch.Tensor):
            parameter = isinstance(obj, torch.nn.Parameter)
            if obj.layout == torch.strided and kind in (torch.Tensor, torch.nn.Parameter):
                # weights as safetensors, not pickle; on the CPU: a model trained on a GPU
                # loads without one (`place`)
                self.tensors.append(obj.detach().cpu().contiguous())
                return _tensor, (len(self.tensors) - 1, parameter, obj.requires_grad)
            if obj.is_cuda:
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
    """The learner as bytes (pickle, without its training data and caches); one holding
    torch tensors: `MAGIC`, the pickle, then its tensors as safetensors (`split`)."""
    buf = io.BytesIO()
    pickler = _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dump(learner)
    if not pickler.tensors:
        return buf.getvalue()
    from safetensors.torch import save

    data = buf.getvalue()
    tensors = save({str(i): t for i, t in enumerate(pickler.tensors)})
    return MAGIC + len(data).to_bytes(8, "little") + data + tensors


def split(data: bytes) -> tuple[bytes, bytes | None]:
    """`freeze`'s bytes -> (the pickle, the safetensors or None)."""
    if not data.startswith(MAGIC):
        return data, None
    n = int.from_bytes(data[len(MAGIC) : len(MAGIC) + 8], "little")
    start = len(MAGIC) + 8
    return data[start : start + n], data[start + n :]


def thaw(data: bytes, where: str = "a saved learner") -> Learner:
    """A learner from `freeze`'s bytes, through `_Unpickler` (the allow-list; a refused
    global is a `ModelError` naming it and ``where``), its torch modules on this
    machine's device (`place`)."""
    pickled, tensors = split(data)
    learner = _Unpickler(io.BytesIO(pickled), where, tensors).load()
    place(learner)
    return learner


# ---- loading: an allow-list of globals ---------------------------------------------------

#: functions that unpickling may call (the reconstructors of what `_Pickler` writes, of
#: numpy arrays and scalars, of torch tensors); any other function may only be referenced
#: (a featuriser, sklearn's ``FunctionTransformer.func``), never called while loading
CALLABLE = frozenset(
    {
        ("autodl.engine.export", "_new"),
        ("autodl.engine.export", "_booster"),
        ("autodl.engine.export", "_none"),
        ("autodl.engine.export", "_cpu_tensor"),
        ("autodl.engine.export", "_shared_encoder"),
        ("copyreg", "_reconstructor"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._pickle", "__generator_ctor"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch._utils", "_rebuild_parameter_with_state"),
        ("torch.storage", "_load_from_bytes"),
    }
)
#: modules whose classes (and, referenced only, functions) a saved model may name
ALLOWED_PREFIXES = (
    "autodl.engine.",
    "numpy.",
    "scipy.sparse.",
    "sklearn.",
    "lightgbm.",
    "torch.nn.modules.",
    "torch.nn.parameter",
    "efficientnet_lite_pytorch.",  # the optional pretrained image features' network
)
#: the classes of other modules a saved model may name
ALLOWED_CLASSES = frozenset(
    {
        *(("builtins", n) for n in ("set", "frozenset", "slice", "range", "complex", "bytearray")),
        *(("collections", n) for n in ("OrderedDict", "defaultdict", "Counter", "deque")),
        ("numpy", "dtype"),
        ("numpy", "ndarray"),
        ("torch", "Size"),
        ("torch", "device"),
    }
)
#: classes in the allowed modules that touch files or load code: refused
REFUSED = frozenset({("numpy", "memmap"), ("numpy._core.memmap", "memmap")})


def _getattr(obj: Any, name: str) -> Any:
    """``getattr`` as pickle uses it for a bound method (the featuriser of a learner that
    is a method of its encoder), refusing dunder names (``__globals__``, ``__class__``)."""
    if not isinstance(name, str) or name.startswith("__"):
        raise ModelError(f"refused to load getattr(..., {name!r}) from a saved model")
    return getattr(obj, name)


def _load_tensor_bytes(data: bytes) -> Any:
    """`torch.storage._load_from_bytes` without its ``torch.load(weights_only=False)``
    (a pickle of its own, unchecked): torch's weights-only loader."""
    import torch

    return torch.load(io.BytesIO(data), weights_only=True)


class _Unpickler(pickle._Unpickler):  # the Python one: its REDUCE can be checked
    """Loads only what `_Pickler` writes: globals from `ALLOWED_PREFIXES` and
    `ALLOWED_CLASSES` (and torch's dtypes), and calls while loading only classes and the
    functions in `CALLABLE`. Anything else is a `ModelError` naming the global."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file: Any, where: str, tensors: bytes | None = None):
        super().__init__(file)
        self.where = where
        self.tensor_bytes = tensors
        self.tensors: dict[str, Any] | None = None
        self.resolve = self._resolve  # one bound method: `_check_call` compares identity

    def _resolve(self, index: int, parameter: bool, requires_grad: bool) -> Any:
        """Tensor ``index`` of the part's safetensors (`_tensor`)."""
        if self.tensors is None:
            if self.tensor_bytes is None:
                raise self._refuse("a tensor reference without its safetensors")
            from safetensors.torch import load

            self.tensors = load(self.tensor_bytes)
        t = self.tensors.get(str(index))
        if t is None:
            raise self._refuse(f"tensor {index!r}, which its safetensors lacks")
        if parameter:
            import torch

            return torch.nn.Parameter(t, requires_grad=bool(requires_grad))
        return t.requires_grad_(bool(requires_grad)) if t.is_floating_point() else t

    def _refuse(self, what: str) -> ModelError:
        return ModelError(
            f"{self.where}: refused to load {what}: a saved model names only the engine's "
            "classes and those of numpy, scipy.sparse, scikit-learn, LightGBM and torch.nn",
            "This file was not written by autodl, or was altered: do not load it.",
        )

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key == ("torch.storage", "_load_from_bytes"):
            return _load_tensor_bytes
        if key == ("builtins", "getattr"):
            return _getattr
        if key == ("autodl.engine.export", "_tensor"):
            return self.resolve
        if key in CALLABLE or key in ALLOWED_CLASSES:
            return super().find_class(module, name)
        # no dotted or dunder names (``Class.__init__.__globals__``), no refused classes
        allowed = "." not in name and "__" not in name and key not in REFUSED
        allowed = allowed and module.startswith(ALLOWED_PREFIXES)
        if not allowed and module == "torch" and "." not in name and "__" not in name:
            import torch

            allowed = isinstance(getattr(torch, name, None), torch.dtype)  # torch.float32
        if not allowed:
            raise self._refuse(f"the global {module}.{name}")
        return super().find_class(module, name)

    def _check_call(self, func: Any) -> None:
        if isinstance(func, type) or any(func is f for f in (_load_tensor_bytes, _getattr)):
            return
        if func is self.resolve:  # the bound method of this unpickler (`_tensor`)
            return
        key = (getattr(func, "__module__", None), getattr(func, "__qualname__", None))
        if key not in CALLABLE and not _is_numpy_reconstructor(func):
            raise self._refuse(f"a call of {key[0]}.{key[1]}")

    def load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        self._check_call(func)
        self.stack[-1] = func(*args)

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        if not isinstance(cls, type):
            raise self._refuse(f"an instance of {cls!r}")
        self.append(cls.__new__(cls, *args))

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack.pop()
        if not isinstance(cls, type):
            raise self._refuse(f"an instance of {cls!r}")
        self.append(cls.__new__(cls, *args, **kwargs))

    def _refuse_old(self) -> None:
        raise self._refuse("an object in pickle's protocol 0/1 form (INST, OBJ)")

    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex
    dispatch[pickle.INST[0]] = _refuse_old
    dispatch[pickle.OBJ[0]] = _refuse_old


def _is_numpy_reconstructor(func: Any) -> bool:
    """numpy's reconstructors are C functions: compared by identity."""
    from numpy._core import multiarray, numeric

    return func in (multiarray._reconstruct, multiarray.scalar, numeric._frombuffer)


def place(obj: Any) -> None:
    """Move the torch modules a thawed learner holds to the engine's device, as the
    learner put them there when it trained (``.to(DEVICE)``); its bare tensors stay on
    the CPU, where it kept them (a CNN's input mean and deviation are applied before its
    batches move to ``_torch.DEVICE``: moved, they met CPU inputs on a GPU machine).
    Without torch loaded, or on a CPU-only machine, there is nothing to move."""
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
            pickled, tensors = split(data)
            (tmp / name).write_bytes(pickled)
            entry = {"file": name, "learner": names[i], "weight": weight, "bytes": len(data)}
            if tensors is not None:  # torch weights: safetensors, not pickle
                entry["tensors"] = f"part-{i}.safetensors"
                (tmp / entry["tensors"]).write_bytes(tensors)
            files.append(entry)
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
            "loading": LOADING_NOTE,
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
        file = folder / p["file"]
        data = file.read_bytes()
        if p.get("tensors"):
            tensors = (folder / p["tensors"]).read_bytes()
            data = MAGIC + len(data).to_bytes(8, "little") + data + tensors
        parts.append((thaw(data, str(file)), float(p["weight"])))
        names.append(str(p["learner"]))
    cal = doc["calibration"]
    with np.load(folder / cal["file"], allow_pickle=False) as arrays:
        calibration = Calibration(
            arrays["a"].copy(), arrays["b"].copy(), bool(cal["multiclass"]), bool(cal["identity"])
        )
    return Recipe(parts, names, calibration)
