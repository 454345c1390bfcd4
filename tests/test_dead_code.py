"""No dead code in autodl: vulture finds nothing that neither autodl nor bench/ uses.

tests/ is not scanned on purpose: a function only its own test calls is dead, and
goes with its test. What vulture cannot see used (called by a framework, by name, or
kept for a real feature only tests exercise) is listed below with who uses it; a
new entry needs the same kind of reason.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("vulture")

ROOT = Path(__file__).resolve().parents[1]

#: Functions registered by a decorator are called by their framework.
FRAMEWORK_DECORATORS = [
    "@router.*",  # FastAPI routes (service/api, service/pages)
    "@app.*",  # FastAPI middleware and exception handlers (service/app.py)
    "@*.command",  # click commands (autodl/cli)
    "@event.listens_for",  # SQLAlchemy engine events (service/db.py)
]

#: Names vulture cannot see used, and who uses them.
USED_ELSEWHERE = {
    "__getattr__": "lazy module attributes (PEP 562): autodl/__init__.py, engine/__init__.py",
    "__dir__": "the same modules' dir(), with their lazy attributes",
    "forward": "torch.nn.Module.__call__ calls it",
    "readable": "the io protocol of the upload stream httpx reads (service/client.py)",
    "_child_main": "run by name in the engine process's `python -c` (autodl/_engine_process.py)",
    "down_revision": "Alembic reads it from each migration",
    "branch_labels": "Alembic reads it from each migration",
    "depends_on": "Alembic reads it from each migration",
    "downgrade": "Alembic calls it (`alembic downgrade`)",
    "impl": "SQLAlchemy TypeDecorator protocol (service/models.py)",
    "cache_ok": "SQLAlchemy TypeDecorator protocol",
    "process_bind_param": "SQLAlchemy TypeDecorator protocol",
    "process_result_value": "SQLAlchemy TypeDecorator protocol",
    "dialect": "an argument of that protocol",
    "isolation_level": "sqlite3 reads it: None turns off the driver's own transactions",
    # Fields of the JSON API's response models (service/api/schemas.py): read by clients.
    "problems_total": "API response field",
    "jobs_running": "API response field",
    "downloads": "API response field",
    "storage_used_bytes": "API response field",
    "storage_left_bytes": "API response field",
    "compute_seconds_used": "API response field",
    "compute_seconds_left": "API response field",
    "points": "API response field",
    "support": "API response field (per_class of …/diagnostics)",
    "f1": "API response field (per_class of …/diagnostics)",
    "average_precision": "API response field (per_class of …/diagnostics)",
    "matrix_max_classes": "API response field (…/diagnostics; diagnostics.js reads it)",
    "image_url": "API response field (…/examples; the job page shows it)",
    "mistakes": "API response field (…/examples)",
    "first_prediction": "API response field (…/leaderboard)",
    "this": "API response field (…/leaderboard: the job asked for)",
    "truncated": "API response field (…/leaderboard)",
    "download": "API response field (…/predictions/{pid}: the CSV's address)",
    "prediction_error": "request.state, read by the job page's template (_predict.html)",
    "prediction_hint": "request.state, read by the job page's template (_predict.html)",
    # Fields of the descriptor_pb2 messages formats/example.py builds: protobuf reads them.
    "default_value": "protobuf descriptor field",
    "oneof_index": "protobuf descriptor field",
    "map_entry": "protobuf descriptor field",
    "deprecated": "protobuf descriptor field",
    # DataSpecification fields, read and written through the name table of formats/spec.py.
    "is_sequence_col": "metadata.textproto field",
    "is_sequence_row": "metadata.textproto field",
    "has_locality_col": "metadata.textproto field",
    "has_locality_row": "metadata.textproto field",
    # Public API whose callers are users and the tests of a real feature.
    "iter_raw": "a split's raw frames (DESIGN, Dataset); tests/convert check JPEG/PNG bytes",
    "write_all": "TFRecordWriter's public API; tests/formats/test_layout.py writes shards",
    "zip_pair": "the official .data.zip + .solution.zip pair open_dataset reads (test_layout)",
    "make_all": "a sample dataset in every domain (tests/datasets_fixture.py)",
    "variable_names": "the docs test checks every setting is documented (tests/test_docs.py)",
    "scoring_at": "a column of the jobs table: when the job entered scoring",
    "reducer_override": "pickle.Pickler calls it (engine/export.py: saved models' parts)",
    "predict_scores": "Model's public API (docs/cli.md): the run's test scores again",
}


@pytest.mark.slow
def test_vulture_finds_no_dead_code():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "vulture",
            "autodl",
            "bench",
            "--min-confidence",
            "60",
            "--ignore-decorators",
            ",".join(FRAMEWORK_DECORATORS),
            "--ignore-names",
            ",".join(USED_ELSEWHERE),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    found = done.stdout.strip()
    assert not found, (
        "vulture finds code nothing uses; remove it (with a test that only tests it), "
        f"or list it in USED_ELSEWHERE with who uses it:\n{found}"
    )
    assert done.returncode == 0, done.stderr
