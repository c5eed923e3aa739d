"""The YAML model's leaf values (numbers, probabilities, distributions, daily curves, groups),
checked one way everywhere, with the offending key's path in every ModelError."""
from __future__ import annotations

import math
from typing import Any

from .model import Dist, ModelError

def num(v: Any, where: str, low: float = 0.0, high: float = math.inf, strict: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ModelError(f"{where}: must be a number")
    if v < low or v > high or (strict and v == low):
        bound = f"> {low:g}" if strict else f">= {low:g}"
        raise ModelError(f"{where}: must be {bound}" + (f" and <= {high:g}" if high != math.inf else ""))
    return float(v)


def prob(v: Any, where: str) -> float:
    return num(v, where, 0.0, 1.0)


def dist(v: Any, where: str) -> Dist:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return Dist.constant(num(v, where))
    if not isinstance(v, dict):
        raise ModelError(f"{where}: a number of seconds or "
                         "{distribution: exponential|lognormal|uniform|constant, ...}")
    kind = v.get("distribution", "constant" if "value" in v else None)
    allowed = {"exponential": {"mean"}, "lognormal": {"mean", "sd"}, "uniform": {"min", "max"},
               "constant": {"value"}}
    if kind not in allowed:
        raise ModelError(f"{where}.distribution: must be one of exponential, lognormal, uniform, constant")
    extra = set(v) - allowed[kind] - {"distribution"}
    missing = allowed[kind] - set(v)
    if extra or missing:
        raise ModelError(f"{where}: a {kind} distribution takes exactly {', '.join(sorted(allowed[kind]))}")
    if kind == "exponential":
        return Dist.exponential(num(v["mean"], f"{where}.mean", strict=True))
    if kind == "lognormal":
        return Dist.lognormal(num(v["mean"], f"{where}.mean", strict=True), num(v["sd"], f"{where}.sd"))
    if kind == "uniform":
        low, high = num(v["min"], f"{where}.min"), num(v["max"], f"{where}.max")
        if high < low:
            raise ModelError(f"{where}: max must be >= min")
        return Dist.uniform(low, high)
    return Dist.constant(num(v["value"], f"{where}.value"))


def curve(v: Any, where: str) -> tuple[float, ...]:
    """24 multipliers: a list of 24 numbers, or {hour: multiplier} held until the next hour given."""
    if isinstance(v, list):
        if len(v) != 24:
            raise ModelError(f"{where}: a list needs 24 values (hours 0-23), got {len(v)}")
        return tuple(num(x, f"{where}[{h}]") for h, x in enumerate(v))
    if isinstance(v, dict) and v:
        points = {}
        for h, x in v.items():
            if isinstance(h, bool) or not isinstance(h, int) or not 0 <= h <= 23:
                raise ModelError(f"{where}: keys must be hours 0-23, got {h!r}")
            points[h] = num(x, f"{where}[{h}]")
        hours = sorted(points)
        value = points[hours[-1]]  # before the first hour given, the last one still holds (wraps midnight)
        out = []
        for h in range(24):
            value = points.get(h, value)
            out.append(value)
        return tuple(out)
    raise ModelError(f"{where}: a list of 24 multipliers or a mapping {{hour: multiplier}}")


def group(entry: dict, key: str, where: str, allowed: set[str]) -> dict | None:
    v = entry.get(key)
    if v is None:
        return None
    if not isinstance(v, dict):
        raise ModelError(f"{where}.{key}: must be a mapping (or null)")
    extra = set(v) - allowed
    if extra:
        raise ModelError(f"{where}.{key}: unknown key(s) {', '.join(sorted(map(str, extra)))}")
    return v
