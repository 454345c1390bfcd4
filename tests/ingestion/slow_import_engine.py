"""An engine whose import takes 2 s: that time must not count against the budget."""

import time

time.sleep(2.0)

from tests.ingestion.engines import quick as run  # noqa: E402,F401
