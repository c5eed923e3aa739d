"""A contact's *profile*: the few events that experience and resolution figures need, and the facts
derived from them.

Queue segments and agent legs need every event of a contact, but only while it is in progress
(stage one keeps those for the retention). FRT, TTR, surveys, QA and the recontact window need
far less for far longer: when the contact was created (channel, customer, issue), which queues
it entered and when, its first agent reply, first resolution, first reopen, and each survey and
QA score. Those "profile events" are kept for the recontact window W after the contact's last
event, so a ticket resolved three days after it was created still has its creation time.

Like `derive_facts`, the profile facts are a pure function of the *set* of profile events.

Fact shapes (fact[1] is the routing key: queue for experience facts, customer for journey facts):
  ("frt", queue, channel, reply_ms, created_ms)                        first non-automated agent reply
  ("ttr", queue, channel, resolved_ms, created_ms)                     first contact.resolved
  ("svy", queue, channel, ts_ms, survey, score, scale_max)             one survey answer
  ("qa", queue, channel, ts_ms, score)                                 one QA score
  ("asvy", agent, ts_ms, survey, score, scale_max)                     a survey answer, for the agent it rates
  ("aqa", agent, ts_ms, score)                                         a QA score, for the audited agent
  ("contact", customer, issue, created_ms, channel, first_queue, resolved_ms, reopened_ms)  journey
The queue of an experience fact is the contact's queue at the time of the measured event: the
queue of its latest `contact.queued` at or before it, `none` if it had not queued yet. The
journey's queue is that of its first `contact.queued` (`none` if it never queued).
A survey rates the agent the customer last dealt with: the agent of the latest `contact.answered`
or non-automated `message.agent_replied` at or before the answer (none before any: the answer
then counts for the queue only). A QA score is for the agent it names.
"""
from __future__ import annotations

import bisect

from .events import UNKNOWN_CHANNEL, Event

NO_QUEUE = "none"
PROFILE_TYPES = frozenset({
    "contact.created", "contact.queued", "contact.answered", "contact.resolved", "contact.reopened",
    "message.agent_replied", "survey.responded", "qa.scored",
})
# Of these types only the first event (in event-time order) matters; later ones can be forgotten
# once the contact is no longer in progress.
FIRST_ONLY = frozenset({"contact.resolved", "contact.reopened"})


def is_profile_event(e: Event) -> bool:
    return e.type in PROFILE_TYPES and not (e.type == "message.agent_replied" and e.automated)


AGENT_TYPES = frozenset({"contact.answered", "message.agent_replied"})  # who the customer dealt with


def compact(events: list[Event]) -> list[Event]:
    """Profile events worth keeping (sorted input): every created / queued / survey / QA, the first
    non-automated reply, first resolution and first reopen, and each answer or reply that changed
    the agent the customer dealt with (enough to know the agent at any instant)."""
    out, seen = [], set()
    agent = None
    for e in events:
        if not is_profile_event(e):
            continue
        if e.type in AGENT_TYPES:
            first_reply = e.type == "message.agent_replied" and e.type not in seen
            seen.add(e.type)
            if e.agent_id == agent and not first_reply:
                continue
            agent = e.agent_id
        elif e.type in FIRST_ONLY:
            if e.type in seen:
                continue
            seen.add(e.type)
        out.append(e)
    return out


def profile_facts(contact_id: str, events: list[Event]) -> tuple[dict[str, tuple], dict[str, tuple]]:
    """(experience facts, journey facts) by fact id, from profile events sorted by Event.sort_key."""
    created = reply = resolved = reopened = None
    queued_ts: list[int] = []
    queued_q: list[str | None] = []  # never None: the decoder requires the queue and agent of these types
    dealt_ts: list[int] = []       # answers and non-automated replies: who the customer dealt with
    dealt_agent: list[str | None] = []
    scored: list[Event] = []
    for e in events:
        t = e.type
        if t == "contact.created":
            if created is None:
                created = e
        elif t == "contact.queued":
            queued_ts.append(e.ts_ms)
            queued_q.append(e.queue_id)
        elif t == "contact.answered":
            dealt_ts.append(e.ts_ms)
            dealt_agent.append(e.agent_id)
        elif t == "message.agent_replied":
            if not e.automated:
                if reply is None:
                    reply = e
                dealt_ts.append(e.ts_ms)
                dealt_agent.append(e.agent_id)
        elif t == "contact.resolved":
            if resolved is None:
                resolved = e
        elif t == "contact.reopened":
            if reopened is None:
                reopened = e
        elif t in ("survey.responded", "qa.scored"):
            scored.append(e)

    def queue_at(ts: int) -> str | None:
        i = bisect.bisect_right(queued_ts, ts)
        return queued_q[i - 1] if i else NO_QUEUE

    channel = created.channel if created is not None and created.channel else UNKNOWN_CHANNEL
    exp: dict[str, tuple] = {}
    if created is not None:
        if reply is not None:
            exp[f"f|{contact_id}"] = ("frt", queue_at(reply.ts_ms), channel, reply.ts_ms, created.ts_ms)
        if resolved is not None:
            exp[f"r|{contact_id}"] = ("ttr", queue_at(resolved.ts_ms), channel, resolved.ts_ms, created.ts_ms)
    for e in scored:
        if e.type == "survey.responded":
            exp[f"v|{contact_id}|{e.event_id}"] = ("svy", queue_at(e.ts_ms), channel, e.ts_ms, e.survey, e.score, e.scale_max)
            i = bisect.bisect_right(dealt_ts, e.ts_ms)
            if i and dealt_agent[i - 1]:
                exp[f"av|{contact_id}|{e.event_id}"] = ("asvy", dealt_agent[i - 1], e.ts_ms, e.survey, e.score, e.scale_max)
        else:
            exp[f"k|{contact_id}|{e.event_id}"] = ("qa", queue_at(e.ts_ms), channel, e.ts_ms, e.score)
            exp[f"ak|{contact_id}|{e.event_id}"] = ("aqa", e.agent_id, e.ts_ms, e.score)
    journey: dict[str, tuple] = {}
    if created is not None:  # no customer id: unidentified ("", see settings.EngineSettings.unidentified)
        journey[f"j|{contact_id}"] = (
            "contact", created.customer_id or "", created.issue, created.ts_ms, channel,
            queued_q[0] if queued_q else NO_QUEUE,
            resolved.ts_ms if resolved is not None else None,
            reopened.ts_ms if reopened is not None else None,
        )
    return exp, journey
