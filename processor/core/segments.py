"""From one contact's events to its queue segments and agent legs ("facts").

The facts are a pure function of the contact's *set* of events, re-derived on every new event
from the events sorted by event time. That makes duplicates and out-of-order arrival harmless:
whatever order the events came in, the same set yields the same facts, and a late event that
re-pairs a segment shows up as a changed fact that downstream state replaces.

Fact shapes (tuples so they compare and serialise cheaply):
  ("seg", queue, channel, start_ms, end_ms, outcome)                 one ended queue segment
  ("seg", queue, channel, start_ms, None, None, stale_ms | None)     one segment not ended: waiting
  ("leg", queue, channel, end_ms, talk_ms, hold_ms, acw_ms)          one ended agent leg

Staleness (when `settings` are given): a contact whose end event is lost would otherwise wait, or
be in progress, for good. Whatever is open (a segment not ended, a leg not wrapped up) is given up
as *stale* once the contact has had no event for longer than the limit of its queue and channel
(`EngineSettings.stale_after`), counted from its last event: in event time, from the events alone.
  - A segment still open carries `stale_ms` = its contact's last event + the limit: stage two stops
    counting it as waiting once the watermark is past that instant (it is counted as stale there).
  - A gap longer than the limit between two events of the contact closes what was open at the
    first of them + the limit: the segment keeps that `stale_ms` for good (never ended: in no
    offered, answered or abandoned figure), the leg ends nowhere (no handled, no AHT), and the
    later event finds nothing open, exactly as it would on a contact whose state was freed. So an
    answer or wrap-up that comes after the limit is an orphan (dead-lettered `impossible_order`),
    while one that happened within the limit, however late it arrives, pairs as usual (or is
    `too_late`, past the retention).
Orphans do not count as events of the contact here: an event that fits nowhere renews nothing.
"""
from __future__ import annotations

from sys import intern
from typing import TYPE_CHECKING, Any

from .events import SEGMENT_ENDS, UNKNOWN_CHANNEL, Event

if TYPE_CHECKING:
    from .settings import EngineSettings

Fact = tuple

# The event types derive_facts reads (contact.created for the channel); any other event of a contact
# leaves its facts and orphans unchanged, so stage one need not derive them again for it.
FACT_TYPES = frozenset({
    "contact.created", "contact.queued", *SEGMENT_ENDS, "contact.hold_started", "contact.hold_ended",
    "contact.transferred", "contact.wrapup_started", "contact.wrapup_ended",
})


def fact_from_json(values: list) -> Fact:
    """A fact read back from JSON (a facts message or a table row): its strings (kinds, queues,
    channels, outcomes, agent and customer ids) one shared copy each, as decoded events' are,
    rather than one per fact held (docs/memory.md#what-made-it-smaller)."""
    return tuple([intern(v) if v.__class__ is str else v for v in values])


class _Leg:
    __slots__ = ("queue", "answered_ms", "hold_ms", "hold_start", "wrap_start", "agent")

    def __init__(self, queue: str, answered_ms: int, agent: str | None = None) -> None:
        self.queue = queue
        self.answered_ms = answered_ms
        self.agent = agent
        self.hold_ms = 0
        self.hold_start: int | None = None
        self.wrap_start: int | None = None

    def close_hold(self, ts: int) -> None:
        if self.hold_start is not None:
            self.hold_ms += ts - self.hold_start
            self.hold_start = None


NEVER = float("inf")  # open_until of a contact with something open that has no staleness limit


def derive_facts(contact_id: str, events: list[Event], channel: str | None = None,
                 leg_agents: dict[str, str] | None = None, settings: "EngineSettings | None" = None,
                 status: dict | None = None, shortest: float | None = None) -> tuple[dict[str, Fact], list[tuple[Event, str]]]:
    """Facts by id, and the events that fit nowhere (with why) for the caller to hold or dead-letter.

    `events` must be sorted by Event.sort_key and free of duplicates. `channel` is used when no
    contact.created is among them (one seen earlier, kept in the contact's profile). When
    `leg_agents` is given, it receives the answering agent of each leg, by leg fact id. With
    `settings`, open segments and legs go stale as the module's docstring says (without: never).
    When `status` is given, status["open_until"] receives when the contact stops being in progress:
    None when nothing is open any more, else the latest instant at which what is open goes stale
    (NEVER when something open has no limit). `shortest`: settings.min_stale_after(), if the caller
    has it at hand.
    """
    fallback, channel = channel, UNKNOWN_CHANNEL
    for e in events:
        if e.type == "contact.created" and e.channel:
            channel = e.channel
            break
    else:
        if fallback:
            channel = fallback
    facts: dict[str, Fact] = {}
    orphans: list[tuple[Event, str]] = []
    open_segments: dict[str, int] = {}
    leg: _Leg | None = None

    def end_leg(ts: int, acw_ms: int) -> None:
        assert leg is not None  # called with a leg open
        talk_end = leg.wrap_start if leg.wrap_start is not None else ts
        talk_ms = talk_end - leg.answered_ms - leg.hold_ms
        fid = f"l|{contact_id}|{leg.answered_ms}"
        facts[fid] = ("leg", leg.queue, channel, ts, talk_ms, leg.hold_ms, acw_ms)
        if leg_agents is not None:
            leg_agents[fid] = leg.agent or ""

    consumed: list[Event] = []  # events already accounted for by an earlier one (rare: see below)

    def limit(queue: str) -> int | None:  # the staleness limit of a queue, for this contact's channel
        return settings.stale_after(queue, channel) if settings is not None else None

    last_ms: Any = None  # (Any: int once set, None before) time of the latest event that fitted (not an orphan); set once anything is open
    if shortest is None:  # a silence no longer than this makes nothing stale, whatever the queue
        shortest = settings.min_stale_after() if settings is not None else NEVER
    for e in events:
        if consumed and any(c is e for c in consumed):
            continue
        if (open_segments or leg is not None) and e.ts_ms - last_ms > shortest:
            gap = e.ts_ms - last_ms
            for queue in [q for q in open_segments if (lim := limit(q)) is not None and gap > lim]:
                start = open_segments.pop(queue)  # given up at last_ms + limit: stale for good
                facts[f"s|{contact_id}|{queue}|{start}"] = ("seg", queue, channel, start, None, None, last_ms + limit(queue))
            if leg is not None and (lim := limit(leg.queue)) is not None and gap > lim:
                leg = None  # never wrapped up: no leg, nothing handled
        t = e.type
        if t == "contact.queued":
            queue_id = e.queue_id
            assert queue_id is not None  # the decoder requires it of the types that open or end a segment
            if queue_id in open_segments:
                orphans.append((e, f"contact.queued for queue {queue_id!r} while already waiting in it"))
            else:
                open_segments[queue_id] = e.ts_ms
        elif (outcome := SEGMENT_ENDS.get(t)) is not None:
            queue_id = e.queue_id
            assert queue_id is not None
            began = open_segments.pop(queue_id, None)
            if began is None:
                orphans.append((e, f"{t} for queue {queue_id!r} with no open queue segment"))
                continue  # an orphan: last_ms stays
            facts[f"s|{contact_id}|{queue_id}|{began}"] = ("seg", queue_id, channel, began, e.ts_ms, outcome)
            if outcome == "answered":
                if leg is not None:  # answered again before the previous leg ended: that leg ends here, no ACW
                    # With one-second timestamps, the transfer that ended that leg (and the end of its
                    # hold) can share this timestamp yet sort after the answer: they end it here.
                    transfer = hold_end = False
                    j = next(k for k, x in enumerate(events) if x is e) + 1
                    while j < len(events) and events[j].ts_ms == e.ts_ms:
                        tj = events[j].type
                        if tj == "contact.transferred" and not transfer:
                            transfer = True
                            consumed.append(events[j])
                        elif tj == "contact.hold_ended" and not hold_end and leg.hold_start is not None:
                            hold_end = True
                            consumed.append(events[j])
                        j += 1
                    leg.close_hold(e.ts_ms)
                    leg.wrap_start = None
                    end_leg(e.ts_ms, 0)
                leg = _Leg(queue_id, e.ts_ms, e.agent_id)
        elif t == "contact.hold_started":
            if leg is None or leg.hold_start is not None or leg.wrap_start is not None:
                orphans.append((e, "hold_started outside a connected leg or while already on hold"))
            else:
                leg.hold_start = e.ts_ms
        elif t == "contact.hold_ended":
            if leg is None or leg.hold_start is None:
                orphans.append((e, "hold_ended without hold_started"))
            else:
                leg.close_hold(e.ts_ms)
        elif t == "contact.transferred":
            if leg is None or leg.wrap_start is not None:
                orphans.append((e, "transferred without a connected leg"))
            else:
                leg.close_hold(e.ts_ms)
                end_leg(e.ts_ms, 0)
                leg = None
        elif t == "contact.wrapup_started":
            if leg is None or leg.wrap_start is not None:
                orphans.append((e, "wrapup_started without a connected leg"))
            else:
                leg.close_hold(e.ts_ms)
                leg.wrap_start = e.ts_ms
        elif t == "contact.wrapup_ended":
            if leg is None or leg.wrap_start is None:
                orphans.append((e, "wrapup_ended without wrapup_started"))
            else:
                end_leg(e.ts_ms, e.ts_ms - leg.wrap_start)
                leg = None
        if not orphans or orphans[-1][0] is not e:  # it fitted
            last_ms = e.ts_ms
    open_until: float | None = None  # the latest instant at which what is still open goes stale
    for queue, start in open_segments.items():
        lim = limit(queue)
        stale_ms = last_ms + lim if lim is not None else None
        facts[f"s|{contact_id}|{queue}|{start}"] = ("seg", queue, channel, start, None, None, stale_ms)
        until = stale_ms if stale_ms is not None else NEVER
        open_until = until if open_until is None else max(open_until, until)
    if leg is not None:
        lim = limit(leg.queue)
        until = last_ms + lim if lim is not None else NEVER
        open_until = until if open_until is None else max(open_until, until)
    if status is not None:
        status["open_until"] = open_until
    return facts, orphans


def is_settled(facts: dict[str, Fact], events: list[Event]) -> bool:
    """True when nothing is in progress: no open segment and no leg awaiting its end."""
    if any(f[0] == "seg" and f[4] is None for f in facts.values()):
        return False
    answers = sum(1 for e in events if e.type == "contact.answered")
    legs = sum(1 for f in facts.values() if f[0] == "leg")
    return legs >= answers
