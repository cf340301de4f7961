"""Pictures and text lines of an episode so far, for gymnasium's ``render()``.

The gymnasium env and the vectorised envs record one episode (bar indices, USDT
weight, portfolio value) in an :class:`EpisodeHistory`; :func:`render_rgb`
draws it as an ``[H, W, 3]`` uint8 frame of four stacked panels, top to bottom:

* close price (USDT/KRW, blue), with a grey line at the episode's first close;
* premium (orange), with a grey line at zero;
* position: USDT weight (green area, red where short), grey line at zero;
* equity: portfolio value in KRW (purple), grey line at the initial cash.

Each panel is scaled to its own range.  The drawing is plain NumPy (a column
per time bucket, min-max of the bucket, joined to the previous bucket), so a
frame of a 1,000-step episode costs a few milliseconds and needs no plotting
backend; there are no text labels (``render_mode="ansi"`` gives the numbers, :func:`render_ansi`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kpremia.data.tensors import MarketTensors

HEIGHT, WIDTH = 320, 480
_BACKGROUND = np.array([255, 255, 255], dtype=np.uint8)
_GUIDE = np.array([200, 200, 200], dtype=np.uint8)
_SEPARATOR = np.array([120, 120, 120], dtype=np.uint8)
_COLORS = {
    "price": np.array([31, 119, 180], dtype=np.uint8),
    "premium": np.array([255, 127, 14], dtype=np.uint8),
    "long": np.array([44, 160, 44], dtype=np.uint8),
    "short": np.array([214, 39, 40], dtype=np.uint8),
    "equity": np.array([148, 103, 189], dtype=np.uint8),
}


@dataclass
class EpisodeHistory:
    """One episode as it is played: bar index, USDT weight and value after each step.

    Entry 0 is the reset (weight 0, the initial cash); entry ``i`` is the state at
    the close of the bar the ``i``-th step ended on.
    """

    t: list[int] = field(default_factory=list)
    usdt_weight: list[float] = field(default_factory=list)
    value_krw: list[float] = field(default_factory=list)

    def start(self, t: int, value_krw: float) -> None:
        """Forget the old episode and record the first bar of a new one."""
        self.t[:] = [int(t)]
        self.usdt_weight[:] = [0.0]
        self.value_krw[:] = [float(value_krw)]

    def append(self, t: int, usdt_weight: float, value_krw: float) -> None:
        """Record the state after one step."""
        self.t.append(int(t))
        self.usdt_weight.append(float(usdt_weight))
        self.value_krw.append(float(value_krw))

    def __len__(self) -> int:
        return len(self.t)


def render_ansi(market: MarketTensors, history: EpisodeHistory) -> str:
    """One text line: time, step, close, premium, USDT weight, value and return of the episode."""
    if not len(history):
        return "no episode yet: call reset()"
    t = history.t[-1]
    when = np.datetime_as_string(np.asarray(market.times[t], dtype="datetime64[m]")).replace("T", " ")
    value, first = history.value_krw[-1], history.value_krw[0]
    return (f"{when} UTC  step {len(history) - 1:>5}  close {float(market.close[t]):>10,.2f} KRW  "
            f"premium {100 * float(market.premium[t]):+6.2f} %  USDT weight {history.usdt_weight[-1]:+.2f}  "
            f"value {value:>14,.0f} KRW  return {100 * (value / first - 1):+7.2f} %")


def render_rgb(market: MarketTensors, history: EpisodeHistory, height: int = HEIGHT,
               width: int = WIDTH) -> np.ndarray:
    """The episode so far as an ``[height, width, 3]`` uint8 image (four panels, see the module doc)."""
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[:] = _BACKGROUND
    if not len(history):
        return frame
    t = np.asarray(history.t, dtype=np.int64)
    close = market.close.detach().cpu().numpy()[t]
    premium = market.premium.detach().cpu().numpy()[t]
    weight = np.asarray(history.usdt_weight, dtype=np.float64)
    value = np.asarray(history.value_krw, dtype=np.float64)
    panels = [
        (close, close[0], "price", False),
        (premium, 0.0, "premium", False),
        (weight, 0.0, "long", True),
        (value, value[0], "equity", False),
    ]
    edges = np.linspace(0, height, len(panels) + 1).round().astype(int)
    for (series, guide, color, area), top, bottom in zip(panels, edges[:-1], edges[1:]):
        _draw_panel(frame[top:bottom], series, guide, color, area)
        if top:
            frame[top] = _SEPARATOR
    return frame


def render(mode: str | None, market: MarketTensors, history: EpisodeHistory) -> np.ndarray | str | None:
    """The episode so far in gymnasium's ``render_mode`` ``mode`` (``None`` for no mode)."""
    if mode == "rgb_array":
        return render_rgb(market, history)
    if mode == "ansi":
        return render_ansi(market, history)
    return None


def _draw_panel(panel: np.ndarray, series: np.ndarray, guide: float, color: str, area: bool) -> None:
    """Draw ``series`` into ``panel`` (a view of the frame) as a line, or as an area from the guide."""
    h, w, _ = panel.shape
    margin = 3
    lo_v = min(float(series.min()), guide) if area else float(series.min())
    hi_v = max(float(series.max()), guide) if area else float(series.max())
    if hi_v - lo_v < 1e-12:  # flat: centre it
        lo_v, hi_v = lo_v - 1.0, hi_v + 1.0

    def rows(v: np.ndarray | float) -> np.ndarray:
        """Pixel row of a value (row 0 at the top)."""
        frac = (np.asarray(v, dtype=np.float64) - lo_v) / (hi_v - lo_v)
        return np.clip(np.round((h - 1 - margin) - frac * (h - 1 - 2 * margin)), 0, h - 1).astype(np.int64)

    if lo_v <= guide <= hi_v:
        panel[rows(guide)] = _GUIDE
    lo, hi, last = _column_ranges(series, w)
    # Join each column to the end of the previous one so steep moves stay connected.
    prev = np.concatenate(([lo[0]], last[:-1])) if not area else lo
    lo, hi = np.minimum(lo, prev), np.maximum(hi, prev)
    if area:
        g = float(guide)
        lo, hi = np.minimum(lo, g), np.maximum(hi, g)
    top_px, bottom_px = rows(hi), rows(lo)  # high value = small row
    ys = np.arange(h)[:, None]
    mask = (ys >= top_px[None, :]) & (ys <= bottom_px[None, :])
    if area:
        mask &= (hi > lo)[None, :]  # no position: nothing to fill (the guide line stays grey)
        short = (series.min() < guide) & (ys > rows(guide)) & mask
        panel[mask & ~short] = _COLORS["long"]
        panel[short] = _COLORS["short"]
    else:
        panel[mask] = _COLORS[color]


def _column_ranges(series: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per pixel column: min, max and last value of the series drawn across the full width.

    A series longer than the width is bucketed (min/max per column); a shorter one is
    linearly interpolated between its points, so one point per step is never lost and a
    short episode still spans the frame.
    """
    n = series.shape[0]
    if n == 1:
        v = np.full(width, series[0])
        return v, v, v
    if n <= width:
        v = np.interp(np.linspace(0, n - 1, width), np.arange(n), series)
        return v, v, v
    col = (np.arange(n) * width) // n  # non-decreasing, every column hit
    starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
    ends = np.r_[starts[1:], n] - 1
    return np.minimum.reduceat(series, starts), np.maximum.reduceat(series, starts), series[ends]
