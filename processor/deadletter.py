"""The dead-letter record: the rejected input, whole, with a bounded reason and a readable detail."""
from __future__ import annotations

import json

from . import jsonline
from .core.contacts import DeadLetter
from .core.events import event_to_contract


def from_raw(reason: str, detail: str, raw: bytes | str) -> dict:
    text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else raw
    return {"reason": reason, "detail": detail, "raw": text}


def from_core(dl: DeadLetter) -> dict:
    """Rejections decided after decoding (impossible order, too late) carry the event in contract form."""
    return {"reason": dl.reason, "detail": dl.detail, "raw": json.dumps(event_to_contract(dl.event), sort_keys=True)}


def dumps(record: dict) -> bytes:
    return jsonline.dumps(record, sort_keys=True).encode()
