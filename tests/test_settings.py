"""Settings: every default declared once, every bad AUTODL_* value a clear SettingError."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from autodl.errors import AutoDLError, SettingError
from autodl.formats.samples import make_tabular
from autodl.settings import RULES, Settings

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_read_back_from_their_own_environment():
    s = Settings()
    assert Settings.from_env({}) == s
    assert Settings.from_env(s.to_env()) == s


def test_every_default_obeys_its_rule():
    # The rules and the defaults are declared in two places: keep them consistent.
    for name, rule in RULES.items():
        assert rule.ok(getattr(Settings(), name)), name


def test_every_rule_names_a_setting():
    assert set(RULES) <= {f.name for f in dataclasses.fields(Settings)}


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("AUTODL_SEED", "x", "an integer from 0 to 4294967295"),
        ("AUTODL_SEED", "-1", "an integer from 0 to 4294967295"),
        ("AUTODL_WORKERS", "-3", "an integer of at least 1"),
        ("AUTODL_WORKERS", "0", "an integer of at least 1"),
        ("AUTODL_TIME_BUDGET", "ten", "a finite number above 0"),
        ("AUTODL_TIME_BUDGET", "0", "a finite number above 0"),
        ("AUTODL_TIME_BUDGET", "nan", "a finite number above 0"),
        ("AUTODL_GRACE_SECONDS", "inf", "a finite number of at least 0"),
        ("AUTODL_PORT", "70000", "an integer from 0 to 65535"),
        ("AUTODL_ENV", "prod", "'development' or 'production'"),
        ("AUTODL_ALLOW_SIGNUP", "maybe", "a boolean (1, 0, true, false, yes, no, on or off)"),
        ("AUTODL_ENGINE", "a:b:c", '"module:function"'),
        ("AUTODL_MAX_CLASSES", "0", "an integer of at least 1"),
    ],
)
def test_a_bad_value_names_the_variable_the_value_and_what_is_expected(variable, value, expected):
    with pytest.raises(SettingError) as caught:
        Settings.from_env({variable: value})
    e = caught.value
    assert isinstance(e, AutoDLError)
    assert (e.variable, e.value) == (variable, value)
    assert expected in e.expected
    assert e.message.startswith(f"{variable}={value!r} is not valid: expected ")
    assert f"Set {variable} to " in e.hint and "unset it to use the default" in e.hint


@pytest.mark.parametrize(
    ("variable", "value", "field", "parsed"),
    [
        ("AUTODL_ENV", " Production ", "env", "production"),
        ("AUTODL_MAX_RECORDS", "1_000", "max_records", 1000),
        ("AUTODL_ALLOW_SIGNUP", "off", "allow_signup", False),
        ("AUTODL_THREADS", "0", "threads", 0),
        ("AUTODL_MAX_RUNNING_PER_USER", "0", "max_running_per_user", 0),
        ("AUTODL_ENGINE", "tests.ingestion.engines", "engine", "tests.ingestion.engines"),
        ("AUTODL_DATA_DIR", "/srv/autodl", "data_dir", Path("/srv/autodl")),
    ],
)
def test_good_values_parse(variable, value, field, parsed):
    assert getattr(Settings.from_env({variable: value}), field) == parsed


@pytest.mark.slow
def test_the_cli_says_which_variable_is_wrong(tmp_path):
    """Not "a bug in autodl": the message and hint of the SettingError, status 1."""
    data = make_tabular(tmp_path, n_train=8, n_test=4)
    env = {"AUTODL_SEED": "x", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "autodl", "run", str(data), "--output", str(tmp_path / "o")],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "AUTODL_SEED='x' is not valid: expected an integer" in done.stderr
    assert "bug" not in done.stderr
