"""Agents' shifts and breaks: release after a contact, breaks, and the 15-minute staffing slots that
log agents in or send them off shift."""
from __future__ import annotations

from .clock import local_hour
from .model import SLOT_MS
from .state import Agent, Stream


class Staffing:
    """Part of `Simulation` (see simulation.py); reads and changes its state."""

    def _release(self, t: int, a: Agent) -> None:
        """The agent finished (wrap-up ended, or transferred): next contact, a break, or off shift."""
        s = a.stream
        if not a.on_shift:
            self._agent_state(t, a, "offline")
            return
        m = s.m
        if a.next_break_ms is not None and t >= a.next_break_ms and t < self.end_ms:
            self._agent_state(t, a, "away")
            a.next_break_ms = None
            self._at(t + m.break_duration.sample_ms(self.rng), self._break_end, a)
            return
        self._ready(t, a)

    def _ready(self, t: int, a: Agent) -> None:
        s = a.stream
        c = self._next_waiting(s)
        if c is not None:
            if a.shown in ("offline", "away"):
                self._agent_state(t, a, "available")
            self._assign(t, c, a)
            return
        self._agent_state(t, a, "available")
        a.idle_since = t
        s.free.append((a, t))

    def _break_end(self, t: int, a: Agent) -> None:
        if not a.on_shift:
            self._agent_state(t, a, "offline")
            return
        self._schedule_break(t, a)
        self._ready(t, a)

    def _schedule_break(self, t: int, a: Agent) -> None:
        every = a.stream.m.break_every
        a.next_break_ms = None if every is None else t + every.sample_ms(self.rng)

    def _staff(self, t: int, s: Stream) -> None:
        """Staffing for the 15-minute slot starting at t: agents log in, or go off shift when free."""
        m = s.m
        if m.staffing_curve is None:
            target = len(s.agents)
        else:
            target = round(len(s.agents) * m.staffing_curve[local_hour(t, m.time_zone)])
            if m.arrivals_per_hour > 0 and s.agents:
                target = max(1, target)
        on = [a for a in s.agents if a.on_shift]
        if len(on) < target:
            for a in s.agents:  # first the ones still finishing (marked off shift), then offline ones
                if len(on) >= target:
                    break
                if not a.on_shift and a.state != "offline":
                    a.on_shift = True
                    on.append(a)
            for a in s.agents:
                if len(on) >= target:
                    break
                if not a.on_shift:
                    a.on_shift = True
                    on.append(a)
                    self._schedule_break(t, a)
                    self._ready(t, a)
        elif len(on) > target:
            surplus = len(on) - target
            # Idle agents leave at once, the others when they finish their contact or break.
            for a in sorted(on, key=lambda a: (a.state != "available", s.agents.index(a)))[:surplus]:
                a.on_shift = False
                if a.state == "available":
                    self._agent_state(t, a, "offline")
        nxt = t - t % SLOT_MS + SLOT_MS
        if m.staffing_curve is not None and nxt < self.end_ms:
            self._at(nxt, self._staff, s)
