"""The privacy page says what the code does: what is kept, who sees it, what deleting removes."""

from __future__ import annotations

import re

from autodl.service import jobs as J
from autodl.service.jobinfo import MAX_STORED_PROBLEMS
from autodl.service.storage import TMP_MAX_AGE


def _text(client) -> str:
    html = client.get("/privacy").text
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html))


def test_the_page_states_what_is_kept_and_what_deleting_removes(app_client):
    text = _text(app_client)
    assert f"at most {MAX_STORED_PROBLEMS} of the warnings" in text
    # The tombstone of a deleted job, as jobs.TOMBSTONE keeps it.
    assert set(J.TOMBSTONE) >= {
        "user_id",
        "created_at",
        "time_budget",
        "duration",
        "quota_refunded",
    }
    for words in (
        "What remains is a line for the quotas",
        "the job's number, your account, when it was submitted, started and ended",
        "its time budget and run time, its final state and whether it counted",
        "the history of state changes with their messages are removed",
    ):
        assert words in text, words
    assert "administrators can also open every job" in text
    assert "Deleting your account" in text and "your API tokens and your user row" in text
    assert TMP_MAX_AGE == 1800 and "untouched for half an hour" in text
    assert "never looked at by people" not in text  # administrators can open jobs
