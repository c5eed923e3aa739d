"""A seeded, deterministic discrete-event contact-center simulation that emits contract events.

Per stream (one queue and channel, with its own pool of agents):

- Poisson arrivals with a daily curve: a piecewise-constant rate, `arrivals_per_hour` times the
  multiplier of the local hour (in the stream's time zone). The rate is constant over each
  15-minute UTC slot (every real UTC offset is a multiple of 15 minutes, so local hours start on
  slot boundaries), and exponential inter-arrival times restarted at each slot boundary make
  the arrival process an exact non-homogeneous Poisson process.
- First-come first-served queueing; the agent idle longest takes the next contact after an
  answer delay (ringing / connect time).
- Customer patience: exponential with mean `patience_seconds` (Erlang-A, M/M/c+M), or infinite
  when it is null (Erlang-C, M/M/c); an optional flow-out timer (voicemail, callback, overflow
  into another queue).
- Handle time from a configurable distribution (constant, exponential, log-normal by mean and
  sd, uniform), with an optional hold inside it, then after-contact work; or a transfer to
  another queue, which ends the leg without ACW and queues the contact again.
- Agents change state (available, busy, acw, away on breaks, offline off shift) following an
  optional staffing curve; they all go offline once the simulation has drained.
- Asynchronous channels (email, ticket, messaging, social): automated acknowledgements
  (`message.agent_replied` with `automated: true`), an agent reply at the end of every handling
  round, the customer writing again (`message.customer_replied`, the ticket is queued again),
  `contact.resolved`, and `contact.reopened` some time later. Chat gets an automated greeting
  and the agent's first reply.
- Resolution, post-contact surveys (`survey.responded`: csat 1-5, ces 1-7, nps 0-10, complaint
  1-5), QA scores, churn, and customers who come back on the same issue (same `customer_id`
  and `issue`): quick retries after an abandon, and repeats hours or days later.

The simulation runs on integer milliseconds, so the event times it writes are exactly the times
it keeps in its own records. From those records (not from `processor.core`) it computes the
ground-truth `queue_interval` figures (`Simulation.truth`), for tests and for `kpi simulate
--truth`.

Randomness: one `random.Random` per stream for arrivals, one for everything else, one for
duplicates and one for the delivery disorder, all seeded from the seed. The same seed and model
give the same bytes; duplicates and disorder change nothing in the simulated center itself.

The package, one module per part: `model` (what a center is), `sample` (the built-in center),
`parse` with `parse_queue`, `parse_population` and `parse_values` (the YAML model), `clock`
(event time), `state` (the running center and its records), `simulation` with `arrivals`,
`queueing`, `service`, `followups` and `staffing` (the discrete-event loop and its steps),
`truth` (the ground truth) and `delivery` (duplicates, disorder, the JSON line). Import from
`processor.simulator`; the names below are its public API.
"""
from .clock import iso_ms
from ..jsonline import dumps  # noqa: F401 - one event as the JSON line `kpi simulate` writes
from .delivery import delivered_events, sorted_events
from .model import (ASYNC_CHANNELS, CHANNELS, FLAT, FLOW_OUT_REASONS, PLAIN_FEED, PROFILES, SLOT_MS, SURVEYS,
                    UNIFORM_CUSTOMERS, BusyAccount, CustomerModel, Dist, FeedModel, Model, ModelError, QueueModel,
                    with_profile)
from .parse import load_model, load_model_text, model_from_dict, model_to_dict
from .sample import DAY_CURVE, DEFAULT_MODEL, STAFF_CURVE
from .simulation import Simulation
from .state import LegRecord, SegmentRecord
from .truth import truth_records

__all__ = [
    "ASYNC_CHANNELS", "CHANNELS", "DAY_CURVE", "DEFAULT_MODEL", "FLAT", "FLOW_OUT_REASONS", "PLAIN_FEED", "PROFILES",
    "SLOT_MS", "STAFF_CURVE", "SURVEYS", "UNIFORM_CUSTOMERS", "BusyAccount", "CustomerModel", "Dist", "FeedModel",
    "LegRecord", "Model", "ModelError", "QueueModel", "SegmentRecord", "Simulation", "delivered_events", "dumps",
    "iso_ms", "load_model", "load_model_text", "model_from_dict", "model_to_dict", "sorted_events", "truth_records",
    "with_profile",
]
