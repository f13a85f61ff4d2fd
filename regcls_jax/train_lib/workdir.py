"""The workdir every family writes: checks, ``config.json``, config fingerprints, the lock."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import time

import jax
from absl import logging


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


def config_fields(config, fields, version: int | None = None) -> dict:
  """The config ``fields`` that define what a checkpoint holds, as JSON values (``version``,
  when given, is one more entry: bump it when the meaning of a checkpoint changes for the same
  fields)."""
  d = config.to_dict()

  def get(path):  # "data.batch_size" reads a nested field
    node = d
    for part in path.split("."):
      node = node.get(part) if isinstance(node, dict) else None
    return node

  plan = {k: get(k) for k in fields}
  if version is not None:
    plan["plan_version"] = version
  return json.loads(json.dumps(plan, sort_keys=True, default=list))


def fingerprint(config, fields, version: int | None = None) -> str:
  """A short hash of `config_fields`; a checkpoint resumes only a run with the same one."""
  blob = json.dumps(config_fields(config, fields, version), sort_keys=True, default=list)
  return hashlib.sha256(blob.encode()).hexdigest()[:16]


def resume_meta(config, fields, version: int | None = None) -> dict:
  """What a checkpoint's meta stores so that a resume can be checked (`check_resume`)."""
  return {
    "fingerprint": fingerprint(config, fields, version),
    "config_fields": config_fields(config, fields, version),
  }


def check_resume(meta: dict, config, fields, where: str, version: int | None = None) -> None:
  """Raises ValueError, naming the changed fields, when the checkpoint ``meta`` (in ``where``)
  was written by a run of another config; nothing is written either way."""
  if meta.get("fingerprint") == fingerprint(config, fields, version):
    return
  saved = meta.get("config_fields") or {}
  now = config_fields(config, fields, version)
  changed = [k for k in now if k in saved and saved[k] != now[k]]
  what = ", ".join(f"config.{k} ({saved[k]!r} -> {now[k]!r})" for k in changed[:3])
  raise ValueError(
    f"{where} holds a checkpoint of a different config"
    + (f": {what}" if what else f" (fingerprint {meta.get('fingerprint')})")
    + "; rerun with the config in its config.json, or use a new --workdir"
  )


# ---------------------------------------------------------------------------------------------
# One run per workdir.

LOCK_FILE = ".lock"


class WorkdirBusyError(RuntimeError):
  """Another live run holds the workdir's lock."""


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # another user's live process
    return True
  return True


class WorkdirLock:
  """``workdir/.lock``: the pid and host of the run that owns the workdir.

  A second run on the same workdir refuses in one line. A lock left by a process that died
  (kill -9, OOM killer, a lost node) on this host is taken over with a warning; one from another
  host cannot be checked, so the message says which file to delete if that run is gone.
  """

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_FILE)
    self._held = False

  def _create(self) -> bool:
    try:
      fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(fd, "w") as f:
      json.dump({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}, f)
    return True

  def acquire(self) -> None:
    if self._create():
      self._held = True
      return
    try:
      with open(self.path) as f:
        owner = json.load(f)
      pid, host = int(owner["pid"]), str(owner["host"])
    except (OSError, ValueError, KeyError, TypeError):
      owner, pid, host = None, -1, "?"
    if owner is not None and host != socket.gethostname():
      raise WorkdirBusyError(
        f"{self.path}: the workdir is in use by pid {pid} on {host}; wait for that run, or "
        "delete the lock file if it is gone"
      )
    if owner is not None and _alive(pid) and pid != os.getpid():
      raise WorkdirBusyError(
        f"{self.path}: the workdir is in use by pid {pid} on this host; wait for it to finish "
        "or use another --workdir"
      )
    logging.warning("%s: taking over the lock of pid %s, which is not running", self.path, pid)
    with contextlib.suppress(FileNotFoundError):
      os.remove(self.path)
    if not self._create():  # another run took it in the meantime
      raise WorkdirBusyError(f"{self.path}: the workdir was just locked by another run")
    self._held = True

  def release(self) -> None:
    if self._held:
      with contextlib.suppress(FileNotFoundError):
        os.remove(self.path)
      self._held = False


def _has_checkpoint(workdir: str) -> bool:
  root = os.path.join(workdir, "checkpoints")
  for dirpath, _, filenames in os.walk(root):
    if filenames and ".orbax-checkpoint-tmp" not in dirpath:
      return True
  return False


@contextlib.contextmanager
def run_in(workdir: str):
  """The workdir of one training run: created if needed, locked for the run's duration.

  Process 0 owns the lock; the other processes of a multi-process run share its workdir. When
  the run fails before it wrote a checkpoint, a workdir this run created is removed again, so a
  failed start leaves nothing behind.
  """
  created = not os.path.exists(workdir)
  prepare_workdir(workdir)
  lock = WorkdirLock(workdir) if jax.process_index() == 0 else None
  try:
    if lock:
      lock.acquire()
  except BaseException:
    if created:
      shutil.rmtree(workdir, ignore_errors=True)
    raise
  try:
    yield workdir
  except BaseException:
    if lock and created and not _has_checkpoint(workdir):
      lock.release()
      shutil.rmtree(workdir, ignore_errors=True)
    raise
  finally:
    if lock:
      lock.release()
