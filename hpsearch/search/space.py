"""Search-space distributions: pure maths, no I/O.

Every distribution maps a uniform draw u in [0, 1) to a value (`from_unit`), so
the sampler draws uniforms and never branches on the kind of distribution.
Numeric ranges also map values back to [0, 1] (`to_unit`) in their own scale
(log10 for log ranges): that position is what border detection looks at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from statistics import NormalDist
from typing import Any

import numpy as np

MAX_INT = 2**53  # the largest integer range a float bound holds exactly
GRID_TOL = 1e-9  # 0.3 / 0.1 = 2.9999999999999996 is still grid point 3


def on_grid(k: int, q: float) -> float | int:
    """Grid point k * q: an int when q is one, else a float rounded to q's decimals (0.3, not
    0.30000000000000004)."""
    if isinstance(q, int) and not isinstance(q, bool):
        return k * q
    exponent = Decimal(repr(q)).as_tuple().exponent
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return round(k * q, decimals) if decimals <= 15 else k * q


def _quantize(x: float, q: float | None) -> Any:
    """W&B's quantization, `round(x / q) * q` (ints for an integer q)."""
    return x if not q else on_grid(round(x / q), q)


def grid_span(low: float, high: float, q: float) -> tuple[int, int]:
    """Indexes (first, last) of the multiples of q inside [low, high]; first > last when there are none."""
    return math.ceil(low / q - GRID_TOL), math.floor(high / q + GRID_TOL)


@dataclass(frozen=True)
class Numeric:
    """A range [low, high], linear or log-scaled, real or integer, with optional hard bounds."""

    low: float
    high: float
    log: bool = False
    integer: bool = False
    q: float | None = None
    bounds: tuple[float, float] | None = None  # values the parameter can never leave
    on_border: str = "extend"  # "keep": never move past an edge, even when flagged
    kind: str = field(default="numeric", init=False)

    def warp(self, x: float) -> float:
        """Map a value into the scale in which the range is uniform."""
        return math.log10(x) if self.log else float(x)

    def unwarp(self, t: float) -> float:
        return 10.0**t if self.log else t

    def from_unit(self, u: float) -> Any:
        """The value at uniform draw u in [0, 1).

        With `q` (W&B's q_* distributions): `round(x / q) * q` of the continuous draw x, kept on
        the grid points inside [low, high], so every value is a multiple of q within the range;
        an int when `integer` (integer min, max and q). Without q an integer range gives each
        integer the same mass (linear), or rounds the log-uniform draw (log).
        """
        if self.integer and not self.log and not self.q:
            # floor over [low, high + 1) gives every integer the same mass
            i = math.floor(self.low + u * (self.high - self.low + 1))
            return int(min(max(i, self.low), self.high))
        lo, hi = self.warp(self.low), self.warp(self.high)
        x = self.unwarp(lo + u * (hi - lo))
        if self.q:
            first, last = grid_span(self.low, self.high, self.q)
            k = min(max(round(x / self.q), first), last) if first <= last else round(x / self.q)
            v = on_grid(k, self.q)
            # a grid point within GRID_TOL of an edge counts as inside: keep the value itself inside
            return int(v) if self.integer else float(min(max(v, self.low), self.high))
        if self.integer:
            return int(min(max(round(x), math.ceil(self.low)), math.floor(self.high)))
        return float(min(max(x, self.low), self.high))

    def to_unit(self, x: float) -> float:
        """Position of x in the range, in the range's own scale (0 = low edge, 1 = high edge)."""
        lo, hi = self.warp(self.low), self.warp(self.high)
        return (self.warp(x) - lo) / (hi - lo)

    def describe(self) -> str:
        scale = "log" if self.log else "linear"
        kind = "int " if self.integer else ""
        step = f" q={fmt(self.q)}" if self.q else ""
        return f"[{fmt(self.low)}, {fmt(self.high)}] {kind}{scale}{step}"


@dataclass(frozen=True)
class Normal:
    """A normal (or log-normal) distribution; unbounded, so it is never border-flagged."""

    mu: float
    sigma: float
    log: bool = False
    q: float | None = None
    kind: str = field(default="normal", init=False)

    def from_unit(self, u: float) -> float:
        u = min(max(u, 1e-12), 1 - 1e-12)
        z = NormalDist(self.mu, self.sigma).inv_cdf(u)
        x = _quantize(math.exp(z) if self.log else z, self.q)
        return x if isinstance(x, int) else float(x)

    def describe(self) -> str:
        return f"{'log-' if self.log else ''}normal(mu={fmt(self.mu)}, sigma={fmt(self.sigma)})"


@dataclass(frozen=True)
class Beta:
    """A Beta(a, b) distribution on [0, 1]; sampled by inverse CDF on a fine grid."""

    a: float
    b: float
    q: float | None = None
    kind: str = field(default="beta", init=False)

    def from_unit(self, u: float) -> float:
        # Numeric inverse CDF: cheap (4097 points) and keeps sampling in unit space.
        x = np.linspace(0.0, 1.0, 4097)[1:-1]
        logpdf = (self.a - 1) * np.log(x) + (self.b - 1) * np.log1p(-x)
        cdf = np.cumsum(np.exp(logpdf - logpdf.max()))
        cdf /= cdf[-1]
        v = _quantize(float(np.interp(u, cdf, x)), self.q)
        return v if isinstance(v, int) else float(v)

    def describe(self) -> str:
        return f"beta(a={fmt(self.a)}, b={fmt(self.b)})"


@dataclass(frozen=True)
class Categorical:
    """A choice among values, uniform unless probabilities are given."""

    values: tuple[Any, ...]
    probabilities: tuple[float, ...] | None = None
    kind: str = field(default="categorical", init=False)

    def from_unit(self, u: float) -> Any:
        n = len(self.values)
        if self.probabilities is None:
            return self.values[min(int(u * n), n - 1)]
        cum = np.cumsum(self.probabilities)
        return self.values[min(int(np.searchsorted(cum, u * cum[-1], side="right")), n - 1)]

    def describe(self) -> str:
        return "{" + ", ".join(fmt(v) for v in self.values) + "}"


@dataclass(frozen=True)
class Constant:
    value: Any
    kind: str = field(default="constant", init=False)

    def from_unit(self, u: float) -> Any:
        return self.value

    def describe(self) -> str:
        return f"= {fmt(self.value)}"


Dim = Numeric | Normal | Beta | Categorical | Constant
Space = dict[str, Dim]
_KINDS = {c.__dataclass_fields__["kind"].default: c for c in (Numeric, Normal, Beta, Categorical, Constant)}


def sample(space: Space, rng: np.random.Generator) -> dict[str, Any]:
    """Draw one configuration: one uniform per dimension, mapped through each distribution."""
    return {name: dim.from_unit(float(rng.random())) for name, dim in space.items()}


def is_searched(dim: Dim) -> bool:
    return not isinstance(dim, Constant)


def to_dict(dim: Dim) -> dict[str, Any]:
    d = {k: getattr(dim, k) for k in dim.__dataclass_fields__}
    for k, v in list(d.items()):
        if isinstance(v, tuple):
            d[k] = list(v)
    return d


def from_dict(d: dict[str, Any]) -> Dim:
    d = dict(d)
    cls = _KINDS[d.pop("kind")]
    for k in ("values", "probabilities", "bounds"):
        if d.get(k) is not None:
            d[k] = tuple(d[k])
    return cls(**d)


def space_to_dict(space: Space) -> dict[str, dict[str, Any]]:
    return {name: to_dict(dim) for name, dim in space.items()}


def space_from_dict(d: dict[str, dict[str, Any]]) -> Space:
    return {name: from_dict(v) for name, v in d.items()}


def fmt(x: Any) -> str:
    """Short human form of a value: 4.1e-01 for small/large floats, plain otherwise."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if x == 0 or math.isnan(x) or math.isinf(x):
        return str(x)
    return f"{x:.1e}" if abs(x) < 1e-2 or abs(x) >= 1e4 else f"{x:.4g}"


def sci(x: Any) -> str:
    """Scientific form for log-scale values: 4.1e-01, and 1e-06 for exact powers of ten."""
    if not isinstance(x, (int, float)) or isinstance(x, bool) or x <= 0:
        return fmt(x)
    s = f"{x:.1e}"
    return s.replace(".0e", "e") if s.split("e")[0].endswith(".0") else s
