"""An engine whose import never ends: only the supervisor's time limit can stop the job."""

import time

time.sleep(3600)


def run(*args, **kwargs):  # pragma: no cover
    yield from ()
