"""The workdir every family writes: checks, ``config.json``, and config fingerprints."""

from __future__ import annotations

import hashlib
import json
import os

import jax


def check_workdir(workdir: str) -> None:
  """Raises NotADirectoryError when ``workdir`` exists and is not a directory."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise NotADirectoryError(f"--workdir={workdir} is a file; expected a directory")


def prepare_workdir(workdir: str) -> None:
  """`check_workdir`, then creates it."""
  check_workdir(workdir)
  os.makedirs(workdir, exist_ok=True)


def write_config(config, workdir: str) -> None:
  """Writes ``config.json`` (process 0 only, atomically): what ``--mode=eval`` reads back."""
  if jax.process_index() != 0:
    return
  path = os.path.join(workdir, "config.json")
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    f.write(config.to_json_best_effort(indent=2))
  os.replace(tmp, path)


def fingerprint(config, fields, version: int | None = None) -> str:
  """A short hash of the config ``fields`` that define what a checkpoint holds.

  A checkpoint resumes only a run with the same fingerprint. ``version`` (when given) is hashed
  too: bump it when the meaning of a checkpoint changes for the same fields.
  """
  d = config.to_dict()
  plan = {k: d.get(k) for k in fields}
  if version is not None:
    plan["plan_version"] = version
  blob = json.dumps(plan, sort_keys=True, default=list)
  return hashlib.sha256(blob.encode()).hexdigest()[:16]
