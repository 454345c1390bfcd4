"""Keyset pages of the job listing on PostgreSQL (nulls, lower(), timestamps with zones)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from autodl.service.app import create_app
from autodl.service.models import User
from tests.service.conftest import NullDispatcher, add_user, bearer
from tests.service.test_listing import _all_pages, _jobs


@pytest.mark.parametrize("sort", ["-created", "name", "-alc", "alc", "dataset"])
def test_pages_chain_on_postgresql(scale_settings, sort):
    app = create_app(replace(scale_settings, broker_url=""), dispatcher=NullDispatcher())
    with TestClient(app) as client:
        token = add_user(client, "ann")
        names = ["b", "A", "c", "a", "Éa", "b", "z", "B"]
        alcs = [0.5, None, 0.2, 0.5, None, 0.9, 0.1, 0.5]
        _jobs(client, "ann", [{"name": n, "alc": a} for n, a in zip(names, alcs, strict=True)])
        whole = client.get("/api/v1/jobs", params={"sort": sort}, headers=bearer(token)).json()
        expected = [j["id"] for j in whole["jobs"]]
        assert len(expected) == len(names)
        for limit in (1, 3):
            assert _all_pages(client, token, sort=sort, limit=limit)[0] == expected
        with app.state.service.db.session() as s:
            assert s.query(User).count() == 1
