"""``autodl worker``: this machine runs jobs from the broker of a scale-out (a Celery worker).

Not the job process: each job that this worker takes runs in a process of its
own, as under the embedded supervisor.
"""

from __future__ import annotations

import click

from autodl.settings import Settings


@click.command()
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Jobs run at once (one GPU each when the machine has several).",
)
def worker(concurrency: int) -> None:
    """Run jobs from the broker (AUTODL_BROKER_URL) on this machine: a Celery worker."""
    from autodl.service.dispatch.worker import run_worker

    run_worker(Settings.from_env(), concurrency)
