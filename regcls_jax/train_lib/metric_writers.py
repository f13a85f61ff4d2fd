"""What a run writes besides checkpoints: CSV tables, ``metrics.jsonl``, TensorBoard events."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence

import jax


def write_csv(rows: Sequence[dict], path: str, columns: Sequence[str]) -> None:
  """Writes ``rows`` (dicts) with the given columns, atomically (a temporary file renamed)."""
  tmp = path + ".tmp"
  with open(tmp, "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
  os.replace(tmp, path)


def write_text(path: str, text: str) -> None:
  """Writes ``text`` to ``path`` atomically (a temporary file renamed)."""
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(text)
  os.replace(tmp, path)


def save_figure(fig, path: str, dpi: int = 120) -> None:
  """Lays out, writes atomically (a temporary file renamed over ``path``) and closes ``fig``."""
  import matplotlib.pyplot as plt

  fig.tight_layout()
  tmp = path + ".tmp.png"
  fig.savefig(tmp, dpi=dpi)
  plt.close(fig)
  os.replace(tmp, path)


class MetricsLog:
  """``metrics.jsonl`` in the workdir (process 0): one JSON line per logged step / epoch.

  A resumed run passes the step it resumes at: the lines an interrupted run wrote after that
  step (its last checkpoint) are dropped, so every step appears once.
  """

  def __init__(self, workdir: str, resumed_step: int | None = None):
    self._path = os.path.join(workdir, "metrics.jsonl") if jax.process_index() == 0 else None
    if self._path and resumed_step is not None and os.path.exists(self._path):
      with open(self._path) as f:
        lines = [ln for ln in f if ln.strip()]
      keep = [ln for ln in lines if json.loads(ln).get("step", 0) <= resumed_step]
      if len(keep) != len(lines):
        write_text(self._path, "".join(keep))

  def write(self, **record) -> None:
    if self._path:
      with open(self._path, "a") as f:
        f.write(json.dumps(record) + "\n")


def tensorboard_writer(workdir: str):
  """A tensorboardX ``SummaryWriter`` on ``workdir/tensorboard`` (process 0; None elsewhere)."""
  if jax.process_index() != 0:
    return None
  from tensorboardX import SummaryWriter

  return SummaryWriter(os.path.join(workdir, "tensorboard"))
