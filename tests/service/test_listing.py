"""Listings page with an opaque cursor, and cost the same whatever the datasets' reports."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import event

from autodl.service import jobs as J
from autodl.service.jobinfo import MAX_STORED_PROBLEMS, dataset_details, dataset_summary
from autodl.service.listing import DEFAULT_LIMIT, MAX_LIMIT
from autodl.service.models import Job, User
from tests.service.conftest import add_user, bearer
from tests.service.test_pages import sign_up


def _report(name="digits", problems=0, classes=3) -> dict:
    return {
        "name": name,
        "domain": "tabular",
        "output_dim": classes,
        "label_names": [f"class {i}" for i in range(classes)],
        "shape": [1, 1, 8, 1],
        "format": "DENSE",
        "train": {"count": 40},
        "test": {"count": 20},
        "unlabelled": None,
        "problems": [
            {
                "file": "train/",
                "record": None,
                "field": "label_index",
                "message": f"class 'class {i}' (column {i}) has no training example.",
                "expected": "at least one train record per class",
                "severity": "warning",
            }
            for i in range(problems)
        ],
    }


def _jobs(client, user_name: str, specs: list[dict]) -> list[int]:
    """Jobs made directly in the database: [{"name":…, "alc":…, "problems":…}, …]; their ids."""
    ids = []
    with client.app.state.service.db.session() as s:
        user = s.query(User).filter_by(name=user_name).one()
        for spec in specs:
            job = J.create_job(
                s,
                user,
                name=spec.get("name", "job"),
                time_budget=spec.get("budget", 60),
                report=_report(problems=spec.get("problems", 0)),
                stored_bytes=0,
            )
            job.alc = spec.get("alc")
            ids.append(job.id)
    return ids


def _all_pages(client, token, **params) -> tuple[list[int], int]:
    ids, pages, cursor = [], 0, None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        r = client.get("/api/v1/jobs", params=query, headers=bearer(token))
        assert r.status_code == 200, r.text
        body = r.json()
        ids += [j["id"] for j in body["jobs"]]
        pages += 1
        cursor = body["next"]
        if cursor is None:
            return ids, pages


@pytest.mark.parametrize(
    ("sort", "key"),
    [
        ("-created", lambda j: -j["id"]),
        ("name", lambda j: (j["name"].lower(), -j["id"])),
        ("-name", None),
        ("alc", None),
        ("-alc", None),
        ("budget", None),
    ],
)
def test_pages_chain_through_every_job_once_in_order(app_client, sort, key):
    token = add_user(app_client, "ann")
    names = ["b", "A", "c", "a", "Éa", "b", "z", "B"]
    alcs = [0.5, None, 0.2, 0.5, None, 0.9, 0.1, 0.5]
    _jobs(
        app_client,
        "ann",
        [
            {"name": n, "alc": a, "budget": 10 * (i % 3)}
            for i, (n, a) in enumerate(zip(names, alcs, strict=True))
        ],
    )
    whole = app_client.get("/api/v1/jobs", params={"sort": sort}, headers=bearer(token)).json()
    assert whole["next"] is None and len(whole["jobs"]) == len(names)
    expected = [j["id"] for j in whole["jobs"]]
    if key is not None:
        assert expected == [j["id"] for j in sorted(whole["jobs"], key=key)]
    for limit in (1, 2, 3):
        ids, pages = _all_pages(app_client, token, sort=sort, limit=limit)
        assert ids == expected, (sort, limit)
        assert pages == -(-len(names) // limit)


def test_a_page_starts_after_the_cursor_whatever_was_added_or_deleted(app_client):
    token = add_user(app_client, "ann")
    first = _jobs(app_client, "ann", [{"name": f"j{i}"} for i in range(5)])
    r = app_client.get("/api/v1/jobs?limit=2", headers=bearer(token)).json()
    assert [j["id"] for j in r["jobs"]] == [first[4], first[3]]
    _jobs(app_client, "ann", [{"name": "new"}])  # newer: belongs to page one, not to page two
    app_client.delete(f"/api/v1/jobs/{first[2]}", headers=bearer(token))
    r2 = app_client.get(
        "/api/v1/jobs", params={"limit": 2, "cursor": r["next"]}, headers=bearer(token)
    )
    assert [j["id"] for j in r2.json()["jobs"]] == [first[1], first[0]]


def test_limits_and_bad_cursors_are_422_and_documented(app_client):
    token = add_user(app_client, "ann")
    _jobs(app_client, "ann", [{}, {}])
    for params in ({"limit": 0}, {"limit": MAX_LIMIT + 1}, {"limit": "x"}):
        r = app_client.get("/api/v1/jobs", params=params, headers=bearer(token))
        assert r.status_code == 422 and "limit" in r.json()["detail"], params
    for cursor in ("garbage!", "eyJ4IjoxfQ", "WyJuYW1lIiwiYSIsMV0"):  # bad, {"x":1}, other sort
        r = app_client.get("/api/v1/jobs", params={"cursor": cursor}, headers=bearer(token))
        assert r.status_code == 422 and r.json()["detail"].startswith("cursor:"), r.text
        assert "next" in r.json()["hint"]
    nxt = app_client.get("/api/v1/jobs?limit=1", headers=bearer(token)).json()["next"]
    r = app_client.get(
        "/api/v1/jobs", params={"cursor": nxt, "sort": "name"}, headers=bearer(token)
    )
    assert r.status_code == 422 and "sort" in r.json()["detail"]
    schema = app_client.get("/api/v1/openapi.json").json()
    params = {p["name"]: p for p in schema["paths"]["/api/v1/jobs"]["get"]["parameters"]}
    assert params["limit"]["schema"]["default"] == DEFAULT_LIMIT
    assert params["limit"]["schema"]["maximum"] == MAX_LIMIT
    assert (
        "cursor" in params and "next" in schema["components"]["schemas"]["JobListOut"]["properties"]
    )


def test_a_forged_cursor_never_shows_another_users_jobs(app_client):
    ann, _ = add_user(app_client, "ann"), add_user(app_client, "bob")
    _jobs(app_client, "bob", [{}, {}])
    import base64

    forged = base64.urlsafe_b64encode(b'["-created","2999-01-01T00:00:00+00:00",999999]')
    r = app_client.get("/api/v1/jobs", params={"cursor": forged.decode()}, headers=bearer(ann))
    assert r.status_code == 200 and r.json()["jobs"] == []


def test_my_jobs_page_has_page_links_and_keeps_the_sort(app_client):
    sign_up(app_client, "carol")
    _jobs(app_client, "carol", [{"name": f"job {i:03d}"} for i in range(DEFAULT_LIMIT + 3)])
    page1 = app_client.get("/jobs?sort=name").text
    assert "job 000" in page1 and "job 049" in page1 and "job 050" not in page1
    assert f"Jobs 1–{DEFAULT_LIMIT} of {DEFAULT_LIMIT + 3}" in page1
    import html
    import re

    link = html.unescape(re.search(r'href="([^"]+)" rel="next"', page1).group(1))
    assert "sort=name" in link and "cursor=" in link and "page=2" in link
    page2 = app_client.get("/jobs" + link).text
    assert "job 050" in page2 and "job 052" in page2 and "job 049" not in page2
    assert f"Jobs {DEFAULT_LIMIT + 1}–{DEFAULT_LIMIT + 3} of" in page2
    assert 'rel="first"' in page2 and 'rel="next"' not in page2


def test_the_stored_report_is_a_summary_and_at_most_100_problems(app_client):
    add_user(app_client, "ann")
    (job_id,) = _jobs(app_client, "ann", [{"problems": 10_000}])
    with app_client.app.state.service.db.session() as s:
        info = s.get(Job, job_id).dataset_info
    summary_line = info.partition("\n")[0]
    assert len(summary_line) < 1000 and json.loads(summary_line)["problems_total"] == 10_000
    assert len(dataset_details(info)["problems"]) == MAX_STORED_PROBLEMS
    assert len(info) < 40_000, len(info)
    assert dataset_summary(info)["output_dim"] == 3


def test_listing_rows_read_only_the_summary(app_client):
    """A row's cost does not depend on its details: they are not even parsed."""
    token = add_user(app_client, "ann")
    (job_id,) = _jobs(app_client, "ann", [{"problems": 5}])
    with app_client.app.state.service.db.session() as s:
        job = s.get(Job, job_id)
        job.dataset_info = job.dataset_info.partition("\n")[0] + "\n{not json, never read"
    row = app_client.get("/api/v1/jobs", headers=bearer(token)).json()["jobs"][0]
    assert row["dataset"]["classes"] == 3 and row["dataset"]["label_names"] is None
    one = app_client.get(f"/api/v1/jobs/{job_id}", headers=bearer(token)).json()
    assert one["dataset"]["classes"] == 3  # the page of one job survives a damaged line too


def test_one_job_gives_label_names_and_the_stored_warnings(app_client):
    token = add_user(app_client, "ann")
    (job_id,) = _jobs(app_client, "ann", [{"problems": 250}])
    data = app_client.get(f"/api/v1/jobs/{job_id}", headers=bearer(token)).json()["dataset"]
    assert data["label_names"] == ["class 0", "class 1", "class 2"]
    assert len(data["problems"]) == MAX_STORED_PROBLEMS and data["problems_total"] == 250


def _statements(client, url: str, token: str) -> tuple[dict, int]:
    """The answer to GET ``url`` and how many SQL statements it ran."""
    engine = client.app.state.service.db.engine
    count = 0

    def counted(*_):
        nonlocal count
        count += 1

    event.listen(engine, "before_cursor_execute", counted)
    try:
        body = client.get(url, headers=bearer(token)).json()
    finally:
        event.remove(engine, "before_cursor_execute", counted)
    return body, count


def test_a_listing_gives_queue_positions_like_one_job_and_stays_cheap(app_client):
    token = add_user(app_client, "ann")
    ids = _jobs(app_client, "ann", [{"name": f"j{i}"} for i in range(4)])
    with app_client.app.state.service.db.session() as s:
        J.set_state(s, s.get(Job, ids[0]), "running")  # the oldest runs; three wait
    rows = app_client.get("/api/v1/jobs", headers=bearer(token)).json()["jobs"]
    for row in rows:
        one = app_client.get(f"/api/v1/jobs/{row['id']}", headers=bearer(token)).json()
        for key in ("queue_position", "jobs_running", "other_jobs"):
            assert row[key] == one[key], (key, row, one)
        assert row["dataset"]["label_names"] is None and one["dataset"]["label_names"]
        assert row["events"] is None and row["downloads"] is None
    assert {r["id"]: r["queue_position"] for r in rows} == {
        ids[0]: None,
        ids[1]: 1,
        ids[2]: 2,
        ids[3]: 3,
    }
    assert {r["jobs_running"] for r in rows if r["state"] == "queued"} == {1}
    # The cost of a page does not grow with its rows: the same statements for 4 or 40.
    _, few = _statements(app_client, "/api/v1/jobs", token)
    _jobs(app_client, "ann", [{"name": f"k{i}"} for i in range(36)])
    body, many = _statements(app_client, "/api/v1/jobs", token)
    assert len(body["jobs"]) == 40 and many == few, (few, many)


def test_the_listing_documents_what_it_leaves_out(app_client):
    spec = app_client.get("/api/v1/openapi.json").json()
    job = spec["components"]["schemas"]["JobOut"]["properties"]
    for key in ("queue_position", "jobs_running", "other_jobs"):
        assert "Listings fill it too" in job[key]["description"]
    for key in ("events", "downloads"):
        assert "null in listings" in job[key]["description"]
    dataset = spec["components"]["schemas"]["DatasetOut"]["properties"]
    assert "null in listings" in dataset["label_names"]["description"]
    listing = spec["paths"]["/api/v1/jobs"]["get"]["description"]
    assert "`label_names`" in listing and "`queue_position`" in listing
