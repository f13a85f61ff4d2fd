"""Progress lines: elapsed time and an ETA over work of known total cost."""

from __future__ import annotations

import math
import time


def format_seconds(s: float) -> str:
  """``'1h02m03s'``, or ``'2m03s'`` under an hour (rounded up to the second)."""
  s = int(math.ceil(s))
  h, rem = divmod(s, 3600)
  m, sec = divmod(rem, 60)
  return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


class Eta:
  """Elapsed time and the remaining time, extrapolated from the cost done so far.

  Costs are relative units (models, chunks weighted by their FLOPs, images); work restored from
  a checkpoint is `skip`ped, so it counts as done without entering the rate.
  """

  def __init__(self, total: float, clock=time.perf_counter):
    self.total = float(total)
    self.done = 0.0
    self._clock = clock
    self._start = clock()

  def skip(self, cost: float) -> None:
    self.total -= cost

  def advance(self, cost: float) -> None:
    self.done += cost

  @property
  def elapsed(self) -> float:
    return self._clock() - self._start

  @property
  def remaining(self) -> float:
    if self.done <= 0:
      return math.nan
    return self.elapsed / self.done * max(self.total - self.done, 0.0)

  def line(self) -> str:
    """``'elapsed 1m02s, ETA 3m04s'`` (``ETA -`` before the first unit of work)."""
    elapsed = self.elapsed
    if self.done <= 0:
      return f"elapsed {format_seconds(elapsed)}, ETA -"
    remaining = elapsed / self.done * max(self.total - self.done, 0.0)
    return f"elapsed {format_seconds(elapsed)}, ETA {format_seconds(remaining)}"
