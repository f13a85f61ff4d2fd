"""Starts N JAX processes on this machine, joined by ``jax.distributed`` over loopback.

Each process runs ``python -m regcls_jax.main`` with the arguments after ``--`` and sees
``--devices_per_process`` CPU devices of its own (``--xla_force_host_platform_device_count``),
so a laptop rehearses what a TPU pod or a multi-node GPU job does: one controller per host,
each feeding its shard of every global batch, collectives between processes (Gloo on CPUs).

  python launch/local.py --num_processes=2 --devices_per_process=2 -- \\
      --config=configs/imdbwiki.py:runlocal --workdir=/tmp/age_2x2

Output lines are prefixed with ``[process i]``. SIGTERM / SIGINT are forwarded to every
process (which save a checkpoint and stop, see regcls_jax/families/images/run.py); if one
process fails the others are stopped. The exit status is the first non-zero status of a
process, else 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading

USAGE = "python launch/local.py --num_processes=N [--devices_per_process=D] -- MAIN_ARGS"


def free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
  if "--" not in argv:
    print(f"error: missing '--' before the arguments of regcls_jax.main\nusage: {USAGE}",
          file=sys.stderr)  # fmt: skip
    sys.exit(2)
  split = argv.index("--")
  parser = argparse.ArgumentParser(usage=USAGE, description=__doc__.split("\n")[0])
  parser.add_argument("--num_processes", type=int, required=True, help="processes to start")
  parser.add_argument(
    "--devices_per_process", type=int, default=1, help="fake CPU devices of each process"
  )
  parser.add_argument("--port", type=int, default=0, help="coordinator port (0: a free one)")
  args = parser.parse_args(argv[:split])
  main_args = argv[split + 1 :]
  if args.num_processes < 1 or args.devices_per_process < 1:
    parser.error("--num_processes and --devices_per_process must be >= 1")
  if not any(a.startswith("--workdir") for a in main_args):
    parser.error("the arguments after '--' must include --workdir=DIR (and --config=...)")
  return args, main_args


def process_env(index: int, args: argparse.Namespace, port: int) -> dict[str, str]:
  env = dict(os.environ)
  flags = [f for f in env.get("XLA_FLAGS", "").split() if "device_count" not in f]
  flags.append(f"--xla_force_host_platform_device_count={args.devices_per_process}")
  env.update(
    XLA_FLAGS=" ".join(flags),
    JAX_PLATFORMS="cpu",
    REGCLS_COORDINATOR=f"127.0.0.1:{port}",
    REGCLS_NUM_PROCESSES=str(args.num_processes),
    REGCLS_PROCESS_ID=str(index),
  )
  return env


def _pump(index: int, stream, lock: threading.Lock) -> None:
  for line in iter(stream.readline, ""):
    with lock:
      sys.stderr.write(f"[process {index}] {line}")
      sys.stderr.flush()


def main(argv: list[str]) -> int:
  args, main_args = parse(argv)
  port = args.port or free_port()
  cmd = [sys.executable, "-m", "regcls_jax.main", *main_args]
  lock = threading.Lock()
  procs = []
  for i in range(args.num_processes):
    p = subprocess.Popen(
      cmd,
      env=process_env(i, args, port),
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
      start_new_session=True,  # a terminal's Ctrl-C reaches the processes through us only
    )
    threading.Thread(target=_pump, args=(i, p.stdout, lock), daemon=True).start()
    procs.append(p)

  def forward(signum, frame):
    del frame
    for p in procs:
      if p.poll() is None:
        p.send_signal(signal.SIGTERM if signum == signal.SIGINT else signum)

  signal.signal(signal.SIGTERM, forward)
  signal.signal(signal.SIGINT, forward)
  status = 0
  remaining = list(procs)
  while remaining:
    for p in list(remaining):
      try:
        rc = p.wait(timeout=0.2)
      except subprocess.TimeoutExpired:
        continue
      remaining.remove(p)
      if rc != 0 and status == 0:
        status = rc
        for other in remaining:  # one failed: the collectives of the others would hang
          other.terminate()
  return status


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
