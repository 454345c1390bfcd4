"""The state machine and run_job, with real engine child processes."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

from autodl.engine.protocol import DEFAULT_ENGINE
from autodl.service import jobs as J
from autodl.service.db import Database
from autodl.service.jobs.runner import run_job
from autodl.service.models import Job, User
from autodl.service.storage import Storage


@pytest.fixture
def world(settings, tabular_dir):
    db = Database(settings.sqlalchemy_url)
    db.upgrade()
    storage = Storage(settings.data_dir)
    with db.session() as s:
        user = User(name="ann", password_hash="x")
        s.add(user)
        s.flush()
        user_id = user.id

    def new_job(budget: float = 3) -> int:
        with db.session() as s:
            job = J.create_job(
                s,
                s.get(User, user_id),
                name="t",
                time_budget=budget,
                report={"name": "tinytabular"},
                stored_bytes=0,
            )
            target = storage.dataset_dir(job.id)
            shutil.copytree(tabular_dir, target)
            return job.id

    yield db, storage, new_job
    db.dispose()


def state(db, job_id):
    with db.session() as s:
        job = s.get(Job, job_id)
        _ = job.events  # loaded while the session is open
        return job


def test_transitions_are_checked_and_time_stamped(world):
    db, _, new_job = world
    job_id = new_job()
    with db.session() as s:
        job = s.get(Job, job_id)
        with pytest.raises(J.InvalidTransition):
            J.set_state(s, job, "finished")
        with pytest.raises(ValueError):
            J.set_state(s, job, "failed")  # a failure needs a reason
        assert J.set_state(s, job, "running")
        assert J.set_state(s, job, "scoring")
        assert J.set_state(s, job, "finished")
        with pytest.raises(J.InvalidTransition):
            J.set_state(s, job, "running")  # terminal
    job = state(db, job_id)
    assert [e.state for e in job.events] == ["queued", "running", "scoring", "finished"]
    assert job.queued_at <= job.started_at <= job.scoring_at <= job.ended_at


def test_compare_and_set_loses_to_a_concurrent_change(world):
    db, _, new_job = world
    job_id = new_job()
    with db.session() as a:
        stale = a.get(Job, job_id)  # read as queued by one process…
    with db.session() as c:
        assert J.set_state(c, c.get(Job, job_id), "cancelled", message="Cancelled by the user.")
    with db.session() as b:  # …which then tries to claim it
        job = b.merge(stale, load=False)
        assert job.state == "queued"
        assert not J.set_state(b, job, "running")
        assert job.state == "cancelled"


def test_the_load_meter_and_the_page_count_the_same_other_jobs(world):
    """One rule for "other jobs running": a job being scored uses the CPU too, so the
    run's load meter (`others_running`) and the page (`running_fields`) both count it."""
    from autodl.service.jobs.queries import others_running, running_count
    from autodl.service.present import running_fields

    db, _, new_job = world
    me, scoring, queued = new_job(), new_job(), new_job()
    with db.session() as s:
        J.set_state(s, s.get(Job, me), "running")
        J.set_state(s, s.get(Job, scoring), "running")
        J.set_state(s, s.get(Job, scoring), "scoring")
    with db.session() as s:
        page = running_fields("running", running_count(s))["other_jobs"]
    assert others_running(db, me) == page == 1
    assert others_running(db, queued) == 2


@pytest.mark.slow
def test_run_job_finishes_and_is_idempotent(world, settings):
    db, storage, new_job = world
    job_id = new_job()
    assert run_job(job_id, settings) == "finished"
    job = state(db, job_id)
    assert (
        job.attempts == 1
        and job.n_predictions == 2
        and job.alc is not None
        and job.final_nauc is not None
    )
    assert [e.state for e in job.events] == ["queued", "running", "scoring", "finished"]
    assert (storage.results_dir(job_id) / "unlabelled" / "predictions.csv").is_file()
    assert json.loads((storage.results_dir(job_id) / "scores.json").read_text())[
        "alc"
    ] == pytest.approx(job.alc)
    assert job.stored_bytes > 0
    # A second delivery does nothing.
    assert run_job(job_id, settings) == "finished"
    assert state(db, job_id).attempts == 1


@pytest.mark.slow
def test_an_engine_without_predictions_fails_with_a_reason_and_costs_quota(world, settings):
    db, _, new_job = world
    job_id = new_job(budget=2)
    assert (
        run_job(job_id, replace(settings, engine="tests.ingestion.engines:never_predicts"))
        == "failed"
    )
    job = state(db, job_id)
    # The data's fault (issue 12): a dataset that makes the engine predict nothing costs quota.
    assert job.fault == "data" and not job.quota_refunded
    assert "made no prediction within the time budget of 2 s" in job.reason


@pytest.mark.slow
def test_an_engine_crash_after_a_prediction_still_finishes_with_a_note(world, settings):
    db, _, new_job = world
    job_id = new_job()
    assert (
        run_job(job_id, replace(settings, engine="tests.ingestion.engines:crash_after_one"))
        == "finished"
    )
    job = state(db, job_id)
    assert job.n_predictions == 1 and "stopped early" in job.note and "learner exploded" in job.note


@pytest.mark.slow
def test_a_run_that_converged_early_says_so_and_how_busy_the_machine_was(world, settings):
    db, storage, new_job = world
    other, job_id = new_job(), new_job(budget=30)
    with db.session() as s:  # another worker's job runs beside it (issue 13, point 8)
        J.set_state(s, s.get(Job, other), "running")
    assert run_job(job_id, replace(settings, engine="tests.ingestion.engines:brief")) == (
        "finished"
    )
    job = state(db, job_id)
    assert job.duration < 20  # the worker was freed long before the 30 s budget
    assert "Finished early: converged at" in job.note and "of 30 s" in job.note
    assert "Machine during the run:" in job.note and "of the CPU free" in job.note
    assert "1 other job running beside it at most" in job.note
    run = json.loads((storage.results_dir(job_id) / "run.json").read_text())
    assert run["machine"]["other_jobs"] == 1
    assert (
        "1 other job running beside it" in (storage.results_dir(job_id) / "report.html").read_text()
    )
    assert "stopped early" not in job.note


def test_an_unloadable_engine_is_a_platform_failure(world, settings):
    db, _, new_job = world
    job_id = new_job()
    assert run_job(job_id, replace(settings, engine="tests.no_such_module:run")) == "failed"
    job = state(db, job_id)
    assert job.fault == "platform" and job.reason.startswith("The engine could not be run")


def test_a_dataset_that_cannot_be_read_is_a_data_failure(world, settings):
    db, storage, new_job = world
    job_id = new_job()
    shutil.rmtree(storage.dataset_dir(job_id) / "tinytabular.data")
    assert run_job(job_id, settings) == "failed"
    job = state(db, job_id)
    assert (
        job.fault == "data"
        and not job.quota_refunded
        and job.reason.startswith("Your dataset could not be read")
    )


@pytest.mark.slow
def test_the_real_default_engine_end_to_end(world, settings):
    """The engine users get (autodl.engine:run), on a tiny dataset with a 5 s budget."""
    db, storage, new_job = world
    job_id = new_job(budget=5)
    assert run_job(job_id, replace(settings, engine=DEFAULT_ENGINE)) == "finished"
    job = state(db, job_id)
    assert job.n_predictions >= 1 and job.alc > 0 and job.final_nauc > 0
    csv = (storage.results_dir(job_id) / "unlabelled" / "predictions.csv").read_text().splitlines()
    # autodl predict's layout: id, a column per class, top_class (multi-class data)
    assert csv[0] == "id,class0,class1,class2,top_class" and len(csv) == 11


@pytest.mark.slow
def test_delete_scrubs_the_row_down_to_its_tombstone(world, settings):
    """Names, notes, reasons, scores and events go; what the quotas need stays."""
    from sqlalchemy import inspect, select

    from autodl.service.models import JobEvent

    db, storage, new_job = world
    job_id = new_job()
    assert run_job(job_id, replace(settings, engine="tests.ingestion.engines:crash_after_one"))
    with db.session() as s:
        job = s.get(Job, job_id)
        job.reason = "secret reason"
        job.dataset_hash = "ab" * 32  # the leaderboard's key goes too
        before = {c.key: getattr(job, c.key) for c in inspect(Job).columns}
        assert job.note and job.alc is not None and job.events
        J.delete(s, job, storage)
    assert not storage.job_dir(job_id).exists()
    with db.session() as s:
        job = s.get(Job, job_id)
        assert s.scalars(select(JobEvent).where(JobEvent.job_id == job_id)).all() == []
        for column in inspect(Job).columns:
            value = getattr(job, column.key)
            if column.key in J.TOMBSTONE:
                if column.key != "deleted_at":
                    assert value == before[column.key], column.key
            else:
                assert value in (None, 0, False, "", "{}", "(deleted)"), (column.key, value)
        assert job.dataset_name == "" and job.note is None and job.reason is None
        assert job.duration is not None and job.time_budget == 3  # compute used still counts
    text = json.dumps({k: str(v) for k, v in before.items()})
    assert "tinytabular" in text  # (the row did hold the name before)


def test_create_job_never_takes_the_form_name_as_the_dataset_name(world):
    db, _, _ = world
    with db.session() as s:
        user = s.scalars(__import__("sqlalchemy").select(User)).first()
        for bad in ("", "../../../7/results/unlabelled/digits", "a\nb", None):
            with pytest.raises(ValueError, match="not allowed"):
                J.create_job(
                    s, user, name="digits", time_budget=5, report={"name": bad}, stored_bytes=0
                )
        job = J.create_job(
            s,
            user,
            name="  my\nrun\r\n\u202e" + "x" * 300,
            time_budget=5,
            report={"name": "digits"},
            stored_bytes=0,
        )
        assert job.dataset_name == "digits"
        assert job.name.startswith("my run ") and "\n" not in job.name and len(job.name) == 100
        blank = J.create_job(
            s, user, name="\n\t ", time_budget=5, report={"name": "digits"}, stored_bytes=0
        )
        assert blank.name == "digits"
