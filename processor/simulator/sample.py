"""The built-in sample center (sales voice, support voice and chat): the feed of `kpi simulate`
without `--model`, and of the benchmarks; its curves are public so models in code can reuse them."""
from __future__ import annotations

from .model import Dist, Model, QueueModel

# A business-day shape (local time): quiet nights, morning and afternoon peaks.
DAY_CURVE = (0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.4, 0.6, 0.9, 1.1, 1.2, 1.15,
             1.0, 1.0, 1.15, 1.15, 1.05, 0.9, 0.7, 0.5, 0.5, 0.45, 0.4, 0.35)
# Staffing follows it (share of the agents on shift), a little ahead of the demand at night.
STAFF_CURVE = (0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.5, 0.7, 0.9, 1.0, 1.0, 1.0,
               0.9, 0.9, 1.0, 1.0, 1.0, 0.9, 0.7, 0.6, 0.6, 0.5, 0.5, 0.45)

# The sample contact center: sales (voice) and support (voice, chat).
DEFAULT_MODEL = Model((
    QueueModel("sales", "voice", "Europe/Paris", 150, DAY_CURVE, 14, STAFF_CURVE,
               handle_time=Dist.lognormal(200, 130), patience_seconds=90,
               flow_out_after_seconds=120, flow_out_reason="voicemail",
               issues=("quote", "order", "pricing", "complaint")),
    QueueModel("support", "voice", "America/New_York", 220, DAY_CURVE, 22, STAFF_CURVE,
               handle_time=Dist.lognormal(240, 160), patience_seconds=150,
               issues=("billing", "technical", "account", "delivery", "complaint")),
    QueueModel("support", "chat", "America/New_York", 90, DAY_CURVE, 12, STAFF_CURVE,
               handle_time=Dist.lognormal(300, 200), patience_seconds=240, hold_probability=0.0,
               auto_reply_probability=0.8,
               issues=("billing", "technical", "account", "delivery", "complaint")),
))
