"""An engine module with a ``warm_up(spec)`` that takes 1.5 s and remembers what it saw.

The warm-up writes the spec's name and output size and the wall time it finished to
the file named by $WARM_ENGINE_FILE; run fails loudly if warm-up did not happen first.
"""

import os
import time

from tests.ingestion.engines import quick

_warmed = []


def warm_up(spec, seed=0, *, threads=None):
    time.sleep(1.5)
    _warmed.append(spec)
    with open(os.environ["WARM_ENGINE_FILE"], "w") as f:
        f.write(f"{spec.name} {spec.output_dim} {seed} {time.time()!r}\n")
    return "warmed for the test"


def run(train, test, unlabelled, budget, **kw):
    assert _warmed and _warmed[0].name == train.spec.name, "warm_up did not run first"
    yield from quick(train, test, unlabelled, budget, **kw)
