"""What several `autodl` commands share.

`AutoDLGroup` is the class of the `autodl` group: every user error ends in one
message and a hint on stderr and exit status 1, never a traceback (``autodl
--debug …`` shows it). `raw_data` and `convert_raw` are raw data given where an
AutoDL dataset is expected (`autodl run`, `autodl submit`), converted with
`autodl format`'s defaults: written once here so both commands ask for the label
column and report the conversion the same way. (The service's upload path,
`autodl._checkproc`, converts too, but answers a web form instead of a terminal:
a dict for the page, one label field, no echo; it shares `format_dataset` and
`describe_raw` with these, not the wording.)
"""

from __future__ import annotations

import functools
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

import click

from autodl.errors import AutoDLError
from autodl.settings import Settings

if TYPE_CHECKING:
    from autodl.formats.convert import FormatResult
    from autodl.formats.convert.detect import RawData


class AutoDLGroup(click.Group):
    """Turns AutoDLError (and anything unexpected) into one clear message, and reads
    the AUTODL_* settings once before any command works (`settings_first`)."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        settings_first(cmd)
        super().add_command(cmd, name)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except AutoDLError as e:
            _fail(e.message, e.hint, ctx)
        except click.UsageError as e:
            # A mistyped path or option of a command: one message, a hint, status 1 (as
            # every user error here), not click's usage block with status 2.
            _fail(e.format_message(), _usage_hint(e), ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            _fail("interrupted", None, ctx)
        except Exception as e:  # noqa: BLE001 - last line of defence for users
            if ctx.obj and ctx.obj.get("debug"):
                traceback.print_exc()
            _fail(
                f"unexpected error: {type(e).__name__}: {e}",
                "This is a bug in autodl; run again with `autodl --debug …` and report the traceback.",
                ctx,
            )


def settings_first(cmd: click.Command) -> None:
    """Make ``cmd`` (every command of it, when a group) read and check the AUTODL_*
    settings before its body runs: a bad value is then one `SettingError` (message and
    hint) before any work, never a failure halfway (a dataset "problem" of `autodl
    check`, a conversion thrown away by `autodl format`). Done in the callback, after
    the options are parsed, so ``--help`` still answers with a bad setting."""
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            settings_first(sub)
        return
    body = cmd.callback
    if body is None or getattr(body, "settings_first", False):
        return

    @functools.wraps(body)
    def checked(*args, **kwargs):
        ctx = click.get_current_context().find_root()
        ctx.obj = {**(ctx.obj or {}), "settings": Settings.from_env()}
        return body(*args, **kwargs)

    checked.settings_first = True  # type: ignore[attr-defined]
    cmd.callback = checked


def settings() -> Settings:
    """The settings the command checked at its start (`settings_first`)."""
    obj = click.get_current_context().find_root().obj or {}
    return obj.get("settings") or Settings.from_env()


def _usage_hint(e: click.UsageError) -> str:
    """The hint that fits the usage error: the usage line for a missing option or
    argument, where relative paths start for a path that does not exist."""
    command = e.ctx.command_path if e.ctx is not None else "autodl"
    see = f"See `{command} --help`."
    if isinstance(e, click.MissingParameter) and e.ctx is not None:
        usage = e.ctx.get_usage().removeprefix("Usage:").strip()
        if isinstance(e.param, click.Option):  # the usage line does not show it: add it
            usage += f" {e.param.opts[0]} {e.param.metavar or e.param.type.name.upper()}"
        return f"The usage is `{usage}`. `{command} --help` lists every option."
    param = getattr(e, "param", None)
    if (
        param is not None
        and isinstance(param.type, click.Path)
        and "does not exist" in e.format_message()
    ):
        return (
            f"Check the path: a relative one starts from the current folder ({Path.cwd()}). " + see
        )
    return see


def _fail(message: str, hint: str | None, ctx: click.Context) -> None:
    click.secho(f"Error: {message}", fg="red", err=True)
    if hint:
        click.echo(f"Hint: {hint}", err=True)
    ctx.exit(1)


def raw_data(path: Path, labels: tuple[str, ...]) -> RawData | None:
    """What raw data ``path`` holds; None when it is an AutoDL dataset, for which
    ``--label`` is refused (the dataset names its classes)."""
    from autodl.formats.convert.detect import describe_raw

    raw = describe_raw(path)
    if raw is None and labels:
        raise AutoDLError(
            f"--label is for raw data, and {path} is an AutoDL dataset",
            "Leave --label out: the dataset names its classes.",
        )
    return raw


def convert_raw(
    path: Path,
    raw: RawData,
    target: Path,
    labels: tuple[str, ...],
    *,
    command: str,
    where: str,
    force: bool = False,
) -> FormatResult:
    """Raw data at ``path`` (as `raw_data` described it) converted into ``target`` with
    `autodl format`'s defaults, saying so on stderr (``where``: into what, in words).

    A table needs its label column: ``labels``, else the one `describe_raw` guessed
    from the column names; without either, the error names `autodl COMMAND`'s option.
    """
    from autodl.formats.convert import format_dataset

    label = list(labels) or ([raw.label] if raw.label else [])
    if raw.kind == "table" and not label:
        raise AutoDLError(
            f"{path} is raw data, {raw.summary}: which column holds the labels?",
            f"Name it: `autodl {command} {path} --label COLUMN …`, or convert it first: "
            f"`{raw.command()}`.",
        )
    said = f" (label column {', '.join(map(repr, label))})" if raw.kind == "table" else ""
    click.echo(
        f"{path} is raw data, {raw.summary}: converting it first with `autodl format`'s "
        f"defaults{said} {where}",
        err=True,
    )
    result = format_dataset(path, target, label=label or None, progress=sys.stderr, force=force)
    for warning in result.warnings:
        click.secho(f"Warning: {warning}", fg="yellow", err=True)
    return result
