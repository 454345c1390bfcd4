"""The README documents every setting and every command (as Datasette's test_docs does)."""

from __future__ import annotations

from pathlib import Path

import pytest

from autodl.cli import main
from autodl.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.mark.parametrize("variable", Settings.variable_names())
def test_every_setting_is_documented(variable):
    assert f"`{variable}`" in README


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_is_documented(command):
    assert f"### `autodl {command}" in README


def test_readme_opens_with_the_install_and_test_commands():
    blocks = README.split("```bash")[1:3]
    assert "pip install -e ." in blocks[0] and "autodl run" in blocks[0]
    assert "pytest" in blocks[1]


def test_settings_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("AUTODL_TIME_BUDGET", "33")
    monkeypatch.setenv("AUTODL_SEED", "7")
    s = Settings.from_env()
    assert s.time_budget == 33.0 and s.seed == 7
