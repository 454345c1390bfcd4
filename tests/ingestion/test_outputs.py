"""What ingestion writes from users' names: start.txt and predictions.csv cannot be injected."""

from __future__ import annotations

import csv
import time

import numpy as np
import pytest
import yaml

from autodl._csv import safe_cell
from autodl._recorder import Recorder
from autodl.errors import IngestionError
from autodl.scoring._keyvalue import key_value_text, parse_key_value_lines
from autodl.scoring.curve import read_prediction_folder


def _record(tmp_path, task="digits", names=("a", "b")):
    rec = Recorder(tmp_path, task, 300.0, time.time())
    array = np.array([[0.25, 0.75], [-1e-5, 1.0]])
    rec.prediction(0, array, time.time())
    rec.unlabelled(array, list(names), np.array([7, 8]))
    rec.end(True, time.time())
    return tmp_path


def test_label_names_cannot_be_spreadsheet_formulas(tmp_path):
    names = ['=HYPERLINK("http://evil","x")', "+cmd|' /C calc'!A0", "@SUM(A1)"]
    names += ["-2+3", "\tx", "\rx", "a,b", 'say "hi"', "-1", "+1", "plain", "a\rb\nc", "é"]
    rec = Recorder(tmp_path, "digits", 300.0, time.time())
    rec.unlabelled(np.full((2, len(names)), 0.5), names, np.array([3, 4]))
    with open(tmp_path / "unlabelled" / "predictions.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == [
        "id",
        '\'=HYPERLINK("http://evil","x")',
        "'+cmd|' /C calc'!A0",
        "'@SUM(A1)",
        "'-2+3",
        "'\tx",
        "'\rx",
        "a,b",
        'say "hi"',
        "-1",
        "+1",
        "plain",
        "a\rb\nc",
        "é",
    ]
    assert rows[1] == ["3"] + ["0.5"] * len(names) and len(rows) == 3


def test_negative_scores_stay_numbers(tmp_path):
    _record(tmp_path)
    raw = (tmp_path / "unlabelled" / "predictions.csv").read_bytes()
    assert raw == b"id,a,b\r\n7,0.25,0.75\r\n8,-1e-05,1\r\n"


def test_the_unlabelled_csv_has_autodl_predicts_layout(tmp_path):
    """Stranger 16, item 7b: the run's CSV had 6 digits and no ``top_class``; it is now
    written by the writer of ``autodl predict``'s CSV (`autodl._csv.predictions_csv`)."""
    from autodl._csv import predictions_csv

    names = ["cat", "=dog", "bird"]
    softmax = np.array([[0.1234567891, 0.5, 0.3765432109], [0.6, 0.2, 0.2]])
    rec = Recorder(tmp_path, "pets", 300.0, time.time())
    rec.unlabelled(softmax, names, np.array([4, 9]))
    text = (tmp_path / "unlabelled" / "predictions.csv").read_bytes().decode("utf-8")
    assert text.splitlines() == [
        "id,cat,'=dog,bird,top_class",
        "4,0.123456789,0.5,0.376543211,'=dog",
        "9,0.6,0.2,0.2,cat",
    ]
    assert text == predictions_csv("id", [4, 9], names, softmax.tolist(), top_class=True)
    # Multi-label (one sigmoid per class: rows need not sum to 1): no top_class.
    sigmoid = np.array([[0.9, 0.8, 0.1], [0.2, 0.3, 0.4]])
    rec.unlabelled(sigmoid, names, np.array([4, 9]))
    lines = (tmp_path / "unlabelled" / "predictions.csv").read_text().splitlines()
    assert lines == ["id,cat,'=dog,bird", "4,0.9,0.8,0.1", "9,0.2,0.3,0.4"]
    rec.unlabelled(softmax, names, np.array([4, 9]), multiclass=False)
    assert "top_class" not in (tmp_path / "unlabelled" / "predictions.csv").read_text()
    rec.end(True, time.time())


@pytest.mark.parametrize("task", ["x\nstart_time: 0", "a:b", "../x", "", "x" * 65])
def test_a_task_name_that_could_inject_lines_or_paths_is_refused(tmp_path, task):
    with pytest.raises(IngestionError, match="not allowed"):
        Recorder(tmp_path, task, 300.0, time.time())
    assert not (tmp_path / "predictions" / "start.txt").exists()


@pytest.mark.parametrize("task", ["digits", "123", "1.5", "yes", "null", "2024-01-01", "1e5"])
def test_start_txt_reads_back_the_same_for_us_and_the_official_scorer(tmp_path, task):
    _record(tmp_path, task)
    text = (tmp_path / "predictions" / "start.txt").read_text()
    official = yaml.safe_load(text)  # the official scorer reads start.txt with PyYAML
    assert official["task_name"] == task and official["time_budget"] == 300
    assert isinstance(official[0], float) and official["ingestion_pid"] == 0
    ours = read_prediction_folder(tmp_path / "predictions")
    assert ours.task == task and len(ours.files) == 1 and ours.time_budget == 300
    end = yaml.safe_load((tmp_path / "predictions" / "end.txt").read_text())
    assert end["ingestion_success"] == 1 and isinstance(end["end_time"], float)


def test_key_value_writer_refuses_or_quotes_what_would_not_read_back():
    for bad in ("a\nb", "a\rb", "x\x00", "a\u2028b"):
        with pytest.raises(ValueError, match="control character"):
            key_value_text([("task_name", bad)])
    for bad_key in ("a b", "a:b", "", "x\n0"):
        with pytest.raises(ValueError, match="cannot be a key"):
            key_value_text([(bad_key, 1)])
    values = ["it's", "a: b", "#x", "- x", "[1]", "{a: 1}", "~", "No", "é", "a'b''c"]
    text = key_value_text([(f"k{i}", v) for i, v in enumerate(values)])
    assert parse_key_value_lines(text.splitlines(), "t") == {
        f"k{i}": v for i, v in enumerate(values)
    }
    assert yaml.safe_load(text) == {f"k{i}": v for i, v in enumerate(values)}


def test_safe_cell_neutralises_formulas_and_keeps_numbers():
    assert [safe_cell(v) for v in ("name", "=1+1", "@x", 3, "-3", "a\nb", None, "+")] == [
        "name", "'=1+1", "'@x", 3, "-3", "a\nb", None, "'+"
    ]  # fmt: skip
    assert safe_cell(-5) == -5 and safe_cell("-5.5e3") == "-5.5e3" and safe_cell("-") == "'-"


def test_predictions_csv_reads_back_through_the_csv_module():
    """The fast writer's text is what the csv module writes for the same cells, for names
    and labels that need quoting, neutralising or neither, and reads back to them."""
    import csv
    import io
    import random

    from autodl._csv import predictions_csv, safe_cell, safe_row

    weird = ["a", "=b", "-1", "c,d", 'e"f', "g\nh", "+x", "1e5", "", " sp", "é", "@z", "\tq"]
    pick = random.Random(0).choice
    rng = np.random.default_rng(0)
    for trial in range(200):
        k, n = int(rng.integers(1, 5)), int(rng.integers(0, 8))
        classes = [pick(weird) for _ in range(k)]
        names = [pick([trial * 7 + i, pick(weird), f"img/{trial}.png"]) for i in range(n)]
        rows = rng.random((n, k)).tolist()
        for top in (True, False):
            want = io.StringIO(newline="")
            writer = csv.writer(want)
            writer.writerow(["id", *safe_row(classes), *(["top_class"] if top else [])])
            for name, row in zip(names, rows, strict=True):
                best = max(range(k), key=row.__getitem__)
                tail = [safe_cell(classes[best])] if top else []
                writer.writerow([safe_cell(name), *(f"{v:.9g}" for v in row), *tail])
            text = predictions_csv("id", names, classes, rows, top_class=top)
            assert text == want.getvalue()
            back = list(csv.reader(io.StringIO(text, newline="")))
            assert len(back) == n + 1
            for got, row in zip(back[1:], rows, strict=True):
                assert [float(v) for v in got[1 : k + 1]] == [float(f"{v:.9g}") for v in row]
