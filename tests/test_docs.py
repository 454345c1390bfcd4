"""The docs document every setting and command, and name only things that exist.

As Datasette's test_docs does: a setting or command added without its documentation, or
a command, option, setting, module or file renamed while a page still shows the old name,
fails here. The README is what a newcomer reads first (kept short); the details live in
docs/*.md, which are checked the same way.
"""

from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import click
import pytest

from autodl.cli import main
from autodl.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = {p.relative_to(ROOT).as_posix(): p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))}
PAGES = {"README.md": README, **DOCS}
SETTINGS_PAGE = DOCS["docs/settings.md"]
CLI_PAGE = DOCS["docs/cli.md"]


# -- every setting and command is documented -------------------------------------------


@pytest.mark.parametrize("variable", Settings.variable_names())
def test_every_setting_is_documented(variable):
    assert re.search(rf"^\| `{variable}` \|", SETTINGS_PAGE, re.M), (
        f"{variable} has no row in docs/settings.md's table"
    )


def _commands(group: click.Group, prefix: str = "autodl") -> list[str]:
    out = []
    for name, command in sorted(group.commands.items()):
        out.append(f"{prefix} {name}")
        if isinstance(command, click.Group):
            out += _commands(command, f"{prefix} {name}")
    return out


@pytest.mark.parametrize("command", _commands(main))
def test_every_command_is_documented(command):
    command_obj = _resolve(command.split()[1:])[0]
    if isinstance(command_obj, click.Group):  # documented through its subcommands
        return
    assert f"### `{command}" in CLI_PAGE, f"docs/cli.md has no section for {command}"


@pytest.mark.parametrize("command", sorted(main.commands))
def test_the_readme_names_every_command(command):
    assert f"`autodl {command}" in README


def test_readme_opens_with_the_install_and_test_commands():
    blocks = README.split("```bash")[1:3]
    assert "pip install -e ." in blocks[0] and "autodl run" in blocks[0]
    assert "pytest" in blocks[1]


def test_the_readme_is_read_in_ten_minutes():
    assert len(README.encode()) < 15_000, "README.md: move details to docs/ (limit 15 KB)"


def test_settings_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("AUTODL_TIME_BUDGET", "33")
    monkeypatch.setenv("AUTODL_SEED", "7")
    s = Settings.from_env()
    assert s.time_budget == 33.0 and s.seed == 7


# -- everything the pages name exists ---------------------------------------------------


def _code(text: str) -> list[str]:
    """The code a page shows: each line of its fenced blocks, and each inline code span."""
    lines = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, re.S | re.M):
        lines += block.splitlines()
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    lines += re.findall(r"`([^`\n]+)`", prose)
    return lines + [line[4:] for line in prose.splitlines() if line.startswith("    ")]


def _shown_commands(text: str) -> list[str]:
    """Each `autodl …` invocation in the page's code (a line or span that starts with it, or
    after `&&`, `|`, `;`, `$(` or a `bin/` path), up to a shell separator or comment."""
    found = []
    for line in _code(text):
        line = re.sub(r"^\s*\$\s+", "", line)  # a console prompt
        for m in re.finditer(r"(?:^|[;&|(]\s*|/bin/)autodl((?: [^\s|;&#)]+)*)", line):
            found.append(("autodl" + m.group(1)).strip())
    return found


def _resolve(words: list[str]) -> tuple[click.Command, list[str]]:
    """The command the words name, walking the group tree, and the words left over."""
    command: click.Command = main
    while words and isinstance(command, click.Group) and not words[0].startswith("-"):
        sub = command.commands.get(words[0])
        if sub is None:
            break
        command, words = sub, words[1:]
    return command, words


def _check_command(shown: str) -> str | None:
    try:
        words = shlex.split(shown.replace("…", ""), posix=True)[1:]
    except ValueError:
        words = shown.split()[1:]
    words = [w.strip("[]") for w in words]
    command, rest = _resolve(words)
    if isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
        return f"`{shown}`: no command {rest[0]!r}"
    known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)} | {"--help"}
    for word in rest:
        option = word.split("=", 1)[0]
        if re.fullmatch(r"--?[a-z][\w-]*", option) and option not in known:
            return f"`{shown}`: no option {option} (the command has {sorted(known)})"
    return None


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_command_shown_exists(page):
    shown = _shown_commands(PAGES[page])
    assert shown or page not in ("README.md", "docs/cli.md")
    errors = sorted({e for e in map(_check_command, shown) if e})
    assert not errors, f"{page}: " + "; ".join(errors)


def _test_variables() -> str:
    """Text of the tests and CI scripts: variables read there only (AUTODL_TEST_PG …)."""
    here = Path(__file__).resolve()
    files = [p for p in (ROOT / "tests").rglob("*.py") if p != here]
    files += [p for p in (ROOT / ".ci").glob("*") if p.is_file()]
    return "\n".join(p.read_text(errors="replace") for p in files)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_setting_named_exists(page):
    settings = set(Settings.variable_names())
    named = set(re.findall(r"\bAUTODL_[A-Z0-9_]*[A-Z0-9](?![\w*])", PAGES[page]))
    unknown = sorted(named - settings)
    if unknown:
        tests = _test_variables()
        unknown = [v for v in unknown if v not in tests]
    assert not unknown, f"{page} names settings that do not exist: {unknown}"


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_file_named_exists(page):
    paths = re.findall(r"(?<![\w./-])((?:autodl|tests|bench|\.ci)/[\w./-]*[\w/])", PAGES[page])
    missing = sorted({p for p in paths if not (ROOT / p).exists()})
    assert not missing, f"{page} names files that do not exist: {missing}"


FILE_SUFFIXES = (".db", ".py", ".zip", ".json", ".log", ".csv", ".md")


def _names_resolve(dotted: str) -> bool:
    """`autodl.x.y` (or `autodl.x:y`) names a module, or an attribute of one."""
    module, _, attr = dotted.partition(":")
    parts = module.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:] + ([attr] if attr else []):
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_module_named_exists(page):
    names = set(re.findall(r"`(autodl(?:\.\w+)+(?::\w+)?)", PAGES[page]))
    names = {n for n in names if not n.endswith(FILE_SUFFIXES)}  # `autodl.db` is a file
    missing = sorted(n for n in names if not _names_resolve(n))
    assert not missing, f"{page} names modules or functions that do not exist: {missing}"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_link_between_pages_works(page):
    here = (ROOT / page).parent
    text = re.sub(r"^```.*?^```", "", PAGES[page], flags=re.S | re.M)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"\w+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = (here / path).resolve() if path else ROOT / page
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md":
            headings = re.findall(r"^#+ (.+)$", file.read_text(), re.M)
            if anchor not in {_anchor(h) for h in headings}:
                broken.append(target)
    assert not broken, f"{page}: broken links {broken}"


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_table_has_its_header_row(page):
    """A table's separator row follows its header row (a benchmark pasted with the
    header on the line of a comment rendered as text: the 300 s table lost its columns)."""
    text = re.sub(r"^```.*?^```", "", PAGES[page], flags=re.S | re.M)
    lines = text.splitlines()
    headless = [
        n + 1
        for n, line in enumerate(lines)
        if re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", line.strip())
        and (n == 0 or not lines[n - 1].lstrip().startswith("|"))
    ]
    assert not headless, f"{page}: table separators without a header row at lines {headless}"
