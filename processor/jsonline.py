"""The JSON text the shell writes: event files, rollup files, dead letters, rollup messages.

Compact and ASCII-escaped (json's default), so a line is the same bytes whichever command wrote it.
The worker's own table rows and facts use orjson instead (processor/worker/tables.py): internal
state, read back only by the worker, where serialising is a third of its time.
"""
from __future__ import annotations

import json


def dumps(obj, *, sort_keys: bool = False) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=sort_keys)
