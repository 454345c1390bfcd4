"""The examples the model gets most wrong (`autodl._examples`): which, in what order, drawn
how, from how few records; and how the report shows them."""

from __future__ import annotations

import io
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autodl._examples import (
    FRAME_HEIGHT,
    MOST,
    PER_CLASS,
    THUMB,
    probabilities,
    worst_mistakes,
    write_examples,
)
from autodl.formats import dataset as dataset_module
from autodl.formats.dataset import open_dataset
from autodl.scoring import score_arrays
from autodl.scoring.report import html_report
from tests.conftest import DATASETS, KIT_SAMPLES
from tests.datasets_fixture import *  # noqa: F403

SAMPLES = {
    **{
        name: DATASETS / name
        for name in (
            "handdigits",
            "cityweather",
            "moviegenres",
            "convention2012",
            "osuleaf",
            "spokendigits",
            "movingdigits",
        )
    },
    "Monkeys": KIT_SAMPLES / "Monkeys",
}
KIND = {"image": "image", "video": "video", "speech": "series", "text": "text"}


def _sample(name: str) -> Path:
    path = SAMPLES[name]
    if not path.is_dir():
        pytest.skip(f"the sample dataset {path} is not here (../shared/data beside the clone)")
    return path


def wrong_prediction(solution: np.ndarray, seed: int = 0) -> np.ndarray:
    """A prediction that is wrong on about half the rows, with varied confidence."""
    rng = np.random.default_rng(seed)
    n, c = solution.shape
    p = rng.random((n, c)) * 0.2
    shift = np.roll(solution, 1, axis=1)
    flip = rng.random(n) < 0.5
    p += np.where(flip[:, None], shift, solution) * rng.uniform(0.3, 3.0, (n, 1))
    return p


# ----------------------------------------------------------------- which, in what order


def _brute_force(solution, prediction, per_class, most):
    """The rule, written the slow obvious way: every wrong row with its confidence,
    sorted, then the first ``per_class`` of each class until ``most``."""
    p = probabilities(prediction)
    rows = []
    for r in range(len(solution)):
        t, g = int(np.argmax(solution[r])), int(np.argmax(p[r]))
        if t != g:
            rows.append((-p[r, g], r, t))
    rows.sort()
    out, per = [], {}
    for _, r, t in rows:
        if per.get(t, 0) < per_class and len(out) < most:
            per[t] = per.get(t, 0) + 1
            out.append(r)
    return out


@pytest.mark.parametrize(("per_class", "most"), [(3, 24), (1, 5), (10, 100)])
def test_multiclass_mistakes_most_confident_first_a_few_per_class(per_class, most):
    rng = np.random.default_rng(1)
    solution = np.eye(6)[rng.integers(0, 6, 400)]
    prediction = rng.random((400, 6)) ** 3
    found = worst_mistakes(solution, prediction, per_class=per_class, most=most)
    assert [m.row for m in found] == _brute_force(solution, prediction, per_class, most)
    conf = [m.probability for m in found]
    assert conf == sorted(conf, reverse=True) and len(found) == min(most, len(found))
    for m in found:
        assert m.true == [int(solution[m.row].argmax())] != m.predicted
        assert m.predicted == [int(prediction[m.row].argmax())]
        assert m.label == m.true[0]
    counts = np.bincount([m.label for m in found], minlength=6)
    assert counts.max() <= per_class


def test_a_row_that_is_right_is_never_a_mistake_and_scores_need_not_sum_to_one():
    solution = np.eye(3)[[0, 1, 2, 2]]
    # Scores, not probabilities (engines emit ranks): 2e-5 is this row's clear winner.
    prediction = np.array([[9e-6, 2e-5, 1e-6], [0.0, 5.0, 1.0], [0.1, 0.1, 0.8], [3.0, -2.0, 1.0]])
    found = worst_mistakes(solution, prediction)
    assert [m.row for m in found] == [3, 0]  # 0.75 before 0.67; rows 1 and 2 are right
    assert found[0].probability == pytest.approx(0.75)
    assert found[1].probability == pytest.approx(2e-5 / 3e-5)


def test_multilabel_mistakes_filed_under_the_label_furthest_from_the_truth():
    solution = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]])
    prediction = np.array(
        [
            [0.9, 0.7, 0.8],  # false positive on label 1 (0.7)
            [0.05, 0.6, 0.1],  # right
            [0.9, 0.02, 0.3],  # false negative on label 1 (error 0.98)
            [0.4, 0.55, 0.45],  # FP label 1 (0.55), FN label 2 (0.55): ties keep label order
        ]
    )
    found = worst_mistakes(solution, prediction)
    assert [(m.row, m.label) for m in found] == [(2, 1), (0, 1), (3, 1)]
    assert found[0].error == pytest.approx(0.98) and found[0].probability == pytest.approx(0.02)
    assert found[0].true == [0, 1] and found[0].predicted == [0]
    assert found[1].predicted == [0, 1, 2]


def test_a_prediction_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r"shape \(2, 3\).*\(2, 2\)"):
        worst_mistakes(np.eye(2), np.ones((2, 3)))


# ----------------------------------------------------------------- every domain


@pytest.mark.parametrize("domain", ["tabular", "image", "text", "speech", "video"])
def test_examples_of_every_domain_from_the_tiny_datasets(tiny_datasets, domain, tmp_path):
    ds = open_dataset(tiny_datasets[domain])
    index = write_examples(ds, wrong_prediction(ds.solution), tmp_path, prediction_index=4)
    _check_index(index, ds, tmp_path)
    assert index["prediction"] == 4


@pytest.mark.parametrize("name", list(SAMPLES))
def test_examples_of_the_sample_datasets(name, tmp_path):
    ds = open_dataset(_sample(name))
    index = write_examples(ds, wrong_prediction(ds.solution), tmp_path)
    _check_index(index, ds, tmp_path)
    if name == "moviegenres":
        assert index["task"] == "multi-label" and index["threshold"] == 0.5
    if name == "convention2012":  # English words from the vocabulary, not ids
        text = index["examples"][0]["text"]
        assert sum(w.isalpha() for w in text.split()) > 10 and "<" not in text.split()[0]
    if name == "Monkeys":  # variable-size RGB frames
        img = Image.open(tmp_path / "examples" / index["examples"][0]["image"])
        assert img.mode == "RGB"


def _check_index(index: dict, ds, out: Path) -> None:
    stored = json.loads((out / "examples" / "index.json").read_text())
    assert stored == index
    sol = ds.solution
    expected = worst_mistakes(sol, wrong_prediction(sol))
    assert [e["row"] for e in index["examples"]] == [m.row for m in expected]
    assert 0 < len(index["examples"]) <= MOST
    names = ds.spec.label_names or [f"class {i}" for i in range(sol.shape[1])]
    kind = KIND.get(ds.spec.domain, "features")
    test_ids = {}
    for e in index["examples"]:
        assert e["kind"] == kind
        assert e["true"] == [names[c] for c in np.flatnonzero(sol[e["row"]] > 0.5)]
        assert e["true"] != e["predicted"]
        test_ids[e["row"]] = e["id"]
        if kind in ("image", "video", "series"):
            img = Image.open(io.BytesIO((out / "examples" / e["image"]).read_bytes()))
            img.load()
            if kind == "image":
                assert max(img.size) == THUMB
            elif kind == "video":
                assert img.height == FRAME_HEIGHT and img.width > 2 * FRAME_HEIGHT
            assert e["text"] is None
        else:
            assert e["image"] is None and e["text"]
    # The ids are the records' own: the rows were read at the right positions.
    records = {i: ex.id for i, ex in enumerate(ds.test) if i in test_ids}
    assert records == test_ids
    per = np.bincount([names.index(e["label"]) for e in index["examples"]])
    assert per.max() <= PER_CLASS


# ----------------------------------------------------------------- bounded


def test_only_the_records_shown_are_decoded_and_none_after_the_last(monkeypatch, tmp_path):
    ds = open_dataset(_sample("spokendigits"))
    decoded = []
    real = dataset_module._records.decode_record
    monkeypatch.setattr(
        dataset_module._records,
        "decode_record",
        lambda data, fmt: decoded.append(len(data)) or real(data, fmt),
    )
    framed = []
    real_records = ds.test.records
    monkeypatch.setattr(
        ds.test, "records", lambda limit=None: framed.append(limit) or real_records(limit)
    )
    sol = ds.solution
    prediction = sol.copy()
    prediction[[3, 11, 17]] = np.roll(sol[[3, 11, 17]], 1, axis=1)  # three mistakes
    index = write_examples(ds, prediction, tmp_path)
    assert [e["row"] for e in index["examples"]] == [3, 11, 17]
    assert len(decoded) == 3 and framed == [18]  # 3 decoded; nothing read past row 17


@pytest.mark.slow
def test_memory_holds_the_examples_not_the_split(tmp_path):
    ds = open_dataset(_sample("spokendigits"))
    sol = ds.solution
    prediction = sol.copy()
    prediction[[0, 40, 79]] = np.roll(sol[[0, 40, 79]], 1, axis=1)
    tracemalloc.start()
    write_examples(ds, prediction, tmp_path)
    examples_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    whole = ds.test.load()
    load_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del whole
    # 3 of 80 recordings (the last one at the end of the split): well under the split's
    # load (12.9 MB against 3.4 MB for the examples, most of it drawing the waveforms; which
    # records are decoded is `test_only_the_records_shown_are_decoded_and_none_after_the_last`'s)
    assert examples_peak < load_peak / 2, (examples_peak, load_peak)


# ----------------------------------------------------------------- the report


def test_the_report_embeds_the_examples(tiny_datasets, tmp_path):
    ds = open_dataset(tiny_datasets["image"])
    prediction = wrong_prediction(ds.solution)
    index = write_examples(ds, prediction, tmp_path)
    images = {
        e["image"]: (tmp_path / "examples" / e["image"]).read_bytes() for e in index["examples"]
    }
    result = score_arrays(ds.solution, [prediction], [3.0], 60, task=ds.name)
    html = html_report(
        result, tmp_path / "r.html", examples=index, example_images=images
    ).read_text()
    assert "Examples the model gets most wrong" in html
    assert html.count('class="mistake"') == len(index["examples"])
    assert html.count("data:image/png;base64,") == len(index["examples"]) + 1  # + the curve
    assert f"{index['mistakes']:,} of {index['rows']:,} test rows wrong" in html
    first = index["examples"][0]
    assert f"p = {first['probability']:.3f}" in html


def test_text_and_label_names_are_escaped_in_the_report(tmp_path):
    sol = np.eye(2)[[0, 1]]
    index = {
        "task": "multi-class",
        "rows": 2,
        "mistakes": 1,
        "per_class": 3,
        "examples": [
            {
                "row": 0,
                "id": 0,
                "label": "<b>",
                "true": ["<b>"],
                "predicted": ["x&y"],
                "probability": 0.9,
                "error": 0.9,
                "kind": "text",
                "image": None,
                "text": "<script>alert(1)</script>",
            }
        ],
    }
    result = score_arrays(sol, [sol[:, ::-1]], [1.0], 60)
    html = html_report(result, tmp_path / "r.html", examples=index).read_text()
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;" in html and "x&amp;y" in html


def test_read_at_gives_the_records_at_those_positions(tiny_datasets):
    ds = open_dataset(tiny_datasets["video"])
    every = list(ds.test)
    wanted = [len(every) - 1, 0, 5, 5]
    got = ds.test.read_at(wanted)
    assert sorted(got) == [0, 5, len(every) - 1]
    for i, example in got.items():
        assert example.id == every[i].id
        assert np.array_equal(example.x, every[i].x)
    assert ds.test.read_at([]) == {}
    with pytest.raises(ValueError, match="start at 0"):
        ds.test.read_at([-1])
