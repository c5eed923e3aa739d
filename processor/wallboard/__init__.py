"""The wallboard: `kpi wallboard` serves a static page fed from the Redis live snapshot by Server-Sent Events."""
from .server import Wallboard, run

__all__ = ["Wallboard", "run"]
