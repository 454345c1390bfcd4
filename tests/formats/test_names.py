"""The dataset name rule: names become file names, so only plain ones are accepted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from autodl.errors import FormatError
from autodl.formats.check import check_dataset
from autodl.formats.dataset import open_dataset
from autodl.formats.names import DATASET_NAME_RULE, valid_dataset_name
from autodl.formats.samples import make_tabular
from tests.conftest import run_autodl


@pytest.fixture(scope="module")
def tab(tmp_path_factory) -> Path:
    return make_tabular(tmp_path_factory.mktemp("names") / "tab", n_train=20, n_test=10)


def renamed(tab: Path, tmp_path: Path, name: str) -> Path:
    """A copy of the dataset whose folder is ``<name>.data`` (and solution ``<name>.solution``)."""
    root = tmp_path / "copy"
    shutil.copytree(tab, root)
    (root / "tinytabular.data").rename(root / f"{name}.data")
    (root / "tinytabular.solution").rename(root / f"{name}.solution")
    return root


@pytest.mark.parametrize(
    "name", ["digits", "a", "A9", "my-data_set.v2", "0", "x" * 64, "Hand.Digits-2019"]
)
def test_plain_names_are_valid(name):
    assert valid_dataset_name(name)


@pytest.mark.parametrize(
    "name",
    ["", ".hidden", "-x", "_x", "a b", "a/b", "..", "a\nb", "a:b", "x" * 65, "é", "a\x00", None],
)
def test_other_names_are_not(name):
    assert not valid_dataset_name(name)


@pytest.mark.parametrize("name", ["", "bad name", "x" * 65, "-dash"])
def test_check_reports_the_folder_and_the_rule(tab, tmp_path, name):
    report = check_dataset(renamed(tab, tmp_path, name))
    problems = [p for p in report.errors if p.field == "name"]
    assert len(problems) == 1, report.problems
    (p,) = problems
    assert p.file == f"{name}.data/" and p.expected == DATASET_NAME_RULE
    assert repr(name) in p.message and "Rename the folder" in p.message
    assert not report.ok


def test_open_dataset_refuses_a_bad_name(tab, tmp_path):
    with pytest.raises(FormatError, match=r"dataset name '' .*not allowed") as e:
        open_dataset(renamed(tab, tmp_path, ""))
    assert e.value.file == ".data/" and e.value.field == "name"


def test_the_cli_says_it(tab, tmp_path):
    root = renamed(tab, tmp_path, "has space")
    check = run_autodl("check", root, "--json")
    assert check.returncode == 1
    (p,) = [p for p in json.loads(check.stdout)["problems"] if p["field"] == "name"]
    assert "'has space'" in p["message"]
    human = run_autodl("check", root)
    assert human.returncode == 1 and "is not allowed" in human.stdout
    run = run_autodl("run", root, "--time-budget", 2, "--output", tmp_path / "out")
    assert run.returncode == 1 and "'has space'" in run.stderr and DATASET_NAME_RULE in run.stderr
