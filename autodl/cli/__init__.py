"""`autodl` on the command line: one module per command group, over the same core as the service.

``main`` is the ``autodl`` group (the console script ``autodl = "autodl.cli:main"``
and ``python -m autodl``); the commands live in

- `autodl.cli.data`: ``format``, ``check``, ``sample`` (datasets);
- `autodl.cli.run`: ``run``, ``score`` (train and score; live progress in `autodl.cli.progress`);
- `autodl.cli.predict`: ``predict`` (a run's saved model on new data);
- `autodl.cli.compare`: ``compare`` (runs side by side, their curves on one chart);
- `autodl.cli.service`: ``serve``, ``user``, ``token``, ``db`` (this machine's service);
- `autodl.cli.worker`: ``worker`` (a Celery worker of a scale-out);
- `autodl.cli.client`: ``submit``, ``submit-predict`` (a client of any server);

and what several of them share in `autodl.cli.common`. Every user error ends in one
message and a hint on stderr and exit status 1, never a traceback (``autodl --debug
…`` shows it). Commands import their heavy dependencies inside their bodies, so
``autodl --help`` stays fast.
"""

from __future__ import annotations

import click

from autodl.cli.client import submit, submit_predict
from autodl.cli.common import AutoDLGroup
from autodl.cli.compare import compare
from autodl.cli.data import check, format_command, sample
from autodl.cli.predict import predict
from autodl.cli.run import run, score
from autodl.cli.service import db, serve, token, user
from autodl.cli.worker import worker

__all__ = ["main"]


@click.group(cls=AutoDLGroup)
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
@click.version_option(package_name="autodl-selfservice", prog_name="autodl")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """AutoDL Self-Service: automatic deep learning for classification datasets."""
    ctx.obj = {"debug": debug}


for _command in (
    check,
    compare,
    db,
    format_command,
    predict,
    run,
    sample,
    score,
    serve,
    submit,
    submit_predict,
    token,
    user,
    worker,
):
    main.add_command(_command)
