"""The simulation's clock and event queue: `Simulation` holds the state and the public API, and
runs the discrete-event loop whose steps live in the mixins (arrivals, queueing, service,
follow-ups, staffing), one file per part of the center's day."""
from __future__ import annotations

import heapq
import itertools
import random
from functools import lru_cache
from typing import Iterator, Sequence

from .arrivals import Arrivals
from .clock import base36, iso_ms
from .followups import FollowUps
from .model import Dist, Model, QueueModel, with_profile
from .queueing import Queueing
from .sample import DEFAULT_MODEL
from .service import Service
from .staffing import Staffing
from .state import Agent, LegRecord, SegmentRecord, Stream
from .truth import truth_records


@lru_cache(maxsize=4)
def zipf_cumulative(population: int, exponent: float) -> list[float]:
    """Cumulative weights k^-exponent of ranks 1..population (a customer is drawn by bisection)."""
    return list(itertools.accumulate(k ** -exponent for k in range(1, population + 1)))


class Simulation(Arrivals, Queueing, Service, FollowUps, Staffing):
    """The simulated contact center. `events()` yields (event time in seconds, event dict) in time order.

    `models`: a Model, or a sequence of QueueModel. `start` is epoch seconds; contacts arrive during
    `duration_seconds`; contacts in progress then are finished (the simulation drains), then every
    agent goes offline. Follow-ups later than the end (surveys, replies, repeats) are not emitted.
    `profile`: `realistic` (the model's customers and feed) or `uniform` (see `with_profile`).
    """

    def __init__(self, models: Model | Sequence[QueueModel] = DEFAULT_MODEL, seed: int = 7,
                 start: float = 1_795_424_400.0, duration_seconds: float = 3600.0,
                 duplicate_probability: float = 0.0, disorder_seconds: float = 0.0, profile: str = "realistic"):
        self.model = with_profile(models if isinstance(models, Model) else Model(tuple(models)), profile)
        self.seed = seed
        self.start_ms = round(start * 1000)
        self.end_ms = self.start_ms + round(duration_seconds * 1000)
        self.dup_p = duplicate_probability
        self.disorder_ms = round(disorder_seconds * 1000)
        self.rng = random.Random(f"{seed}:behaviour")
        self.tag = f"{seed}.{base36(self.start_ms // 1000)}"
        self.streams = {m.key: Stream(m, seed) for m in self.model.queues}
        for s in self.streams.values():
            m = s.m
            names = m.transfer_to if m.transfer_to is not None else [
                k[0] for k in self.streams if k != m.key and k[1] == m.channel]
            s.transfer_targets = [self.streams[(n, m.channel)] for n in names]
        # Who calls, and how the sources stamp and fill events: random streams of their own, so the
        # simulated center (arrivals, queues, agents) is the same under every customer profile.
        self.customers = self.model.customers
        self.feed = self.model.feed
        self._cust_rng = random.Random(f"{seed}:customers")
        self._feed_rng = random.Random(f"{seed}:feed")
        self._zipf = (zipf_cumulative(self.customers.population, self.customers.exponent)
                      if self.customers.distribution == "zipf" else None)
        self._placeholder = self.customers.placeholder if self.customers.unidentified_share > 0 else None
        if self.feed.agent_clock_skew is not None:
            for s in self.streams.values():
                for a in s.agents:
                    a.skew_ms = self.feed.agent_clock_skew.sample_ms(self._feed_rng)
        self.segments: list[SegmentRecord] = []
        self.legs: list[LegRecord] = []
        self.contacts: dict[str, dict] = {}   # contact id -> customer, issue, repeat_of, resolved...
        self._heap: list = []
        self._seq = 0
        self._n_event = 0
        self._n_contact = 0
        self._n_customer = 0
        self._out: list[tuple[int, dict]] = []
        self._done = False

    # -- public ------------------------------------------------------------------------
    def events(self) -> Iterator[tuple[float, dict]]:
        """Every event once, in the order the center emits them (no duplicates, no disorder), with its time
        in seconds: event-time order, but for the presence events a skewed agent clock stamps early."""
        self.run()
        return ((t / 1000, ev) for t, ev in self._out)

    def run(self) -> "Simulation":
        if not self._done:
            self._simulate()
            self._done = True
        return self

    def delivered(self, in_time_order: bool = False) -> list[dict]:
        """The events as a feed delivers them: with duplicates (each event sent again with probability
        `duplicate_probability`) and, with `disorder_seconds` > 0, each copy delayed by a uniform
        [0, disorder) and delivered in order of its delayed time (out of order by less than that).
        in_time_order: sorted (stably) by event time, which only moves skewed presence events."""
        self.run()
        dup_rng = random.Random(f"{self.seed}:duplicates")
        copies: list[dict] = []
        times: list[int] = []
        for t, ev in self._out:
            copies.append(ev)
            times.append(t)
            if self.dup_p and dup_rng.random() < self.dup_p:
                copies.append(dict(ev))
                times.append(t)
        if self.disorder_ms <= 0:
            if in_time_order and self.feed.agent_clock_skew is not None:
                return [copies[i] for i in sorted(range(len(copies)), key=times.__getitem__)]
            return copies
        rng = random.Random(f"{self.seed}:disorder")
        keyed = sorted(range(len(copies)), key=lambda i: (times[i] + rng.randrange(self.disorder_ms), i))
        return [copies[i] for i in keyed]

    def truth(self, settings) -> list[dict]:
        """Ground-truth `queue_interval` records (without `version`) from the simulator's own records.

        `settings` supplies the interval length and each queue's T, S and target (an EngineSettings:
        `interval_ms` and `queue(id)` with `threshold_seconds`, `short_abandon_seconds`,
        `service_level_target`). Intervals are aligned on UTC multiples of the interval length; a
        segment counts in the interval holding its end, a leg in the one holding its end.
        """
        self.run()
        return truth_records(self.segments, self.legs, settings)

    # -- machinery ---------------------------------------------------------------------
    def _at(self, t: int, fn, *args) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, fn, args))

    def _emit(self, t: int, type_: str, **fields) -> None:
        self._n_event += 1
        ev = {"event_id": f"{self.tag}-{self._n_event:09d}", "type": type_, "ts": iso_ms(t)}
        ev.update(fields)
        self._out.append((t, ev))

    def _agent_state(self, t: int, a: Agent, state: str) -> None:
        a.state = state
        if a.shown != state:
            a.shown = state
            self._emit(t - a.skew_ms, "agent.state_changed", agent_id=a.agent_id, state=state, queues=a.stream.queues_field)

    def _later(self, t: int, delay: Dist) -> int | None:
        """A follow-up time, or None when it falls after the end of the simulation."""
        at = t + delay.sample_ms(self.rng)
        return at if at <= self.end_ms else None

    def _simulate(self) -> None:
        start = self.start_ms
        for s in self.streams.values():
            s.t_arrival = float(start)
            self._staff(start, s)
            for a in s.agents:  # everyone's presence is known from the start
                if not a.on_shift:
                    self._agent_state(start, a, "offline")
            nxt = self._next_arrival(s)
            if nxt is not None:
                self._at(nxt, self._arrive, s)
        t = start
        heap = self._heap
        while heap:
            t, _, fn, args = heapq.heappop(heap)
            fn(t, *args)
        final = max(t, self.end_ms)
        for s in self.streams.values():
            for a in s.agents:
                self._agent_state(final, a, "offline")
