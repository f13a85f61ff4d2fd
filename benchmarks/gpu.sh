#!/usr/bin/env bash
# The GPU measurements, in the order they matter, within a few minutes of a lent GPU:
#
#   bash benchmarks/gpu.sh [OUT_DIR]          # default: $OUT, else ./gpu_results
#
#   1. the 1D paper grid (`benchmarks/sweep1d.py`: projection, FLOP / byte floors), 4 min at most
#   2. the age step (ResNet-50 + K=100 cls head, batch 256, bf16) on one device-resident batch,
#      then fed by the Grain train pipeline (`benchmarks/train_step.py --models=age`), 3 min
#   3. the depth step (Hu et al. + per-pixel head, batch 16 x 2), the same two ways, 3 min
#
# Each part has its own time limit, so one that hangs does not eat the others' time; each
# writes its whole output to OUT_DIR/<part>.txt, and the last lines printed are the figures the
# README's tables take (`grep =` of every part). Nothing here needs a GPU to run: on a CPU it
# stops at once with one line unless GPU_SH_ON_CPU=1 (then use SMOKE=1: tiny sizes, a check that
# every command still runs).
#
# The lent machine has JAX, Flax, Optax and Orbax but not grain, tensorflow-datasets or
# ml-collections: carry them as wheels built for its Python and install them first, e.g.
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site wheels/*.whl
#   export PYTHONPATH=/tmp/site:$PWD
set -uo pipefail
out=$(realpath -m "${1:-${OUT:-gpu_results}}")  # relative to where it is called from
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD

backend=$("$py" -c "import jax; print(jax.default_backend())" 2>/dev/null) || {
  echo "error: $py cannot import jax (install the project first: README, Install)" >&2
  exit 2
}
if [[ $backend != gpu && ${GPU_SH_ON_CPU:-0} != 1 ]]; then
  echo "error: JAX's default backend is '$backend', not 'gpu' (GPU_SH_ON_CPU=1 runs it anyway)" >&2
  exit 2
fi
if [[ ${SMOKE:-0} == 1 ]]; then
  sweep=(--epochs 1 --repeats 1 --groups reg)
  age=(--age_batch 2 --steps 1)
  depth=(--depth_batch 2 --cost_only)  # a CPU runs the depth step for minutes
else
  sweep=(--epochs 2 --repeats 2)
  age=()
  depth=()
fi

mkdir -p "$out"
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true
status=0
part() {  # part NAME LIMIT_SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name (at most ${limit}s): $*"
  local start=$SECONDS
  timeout -k 10 "$limit" "$@" >"$out/$name.txt" 2>&1
  local rc=$?
  echo "   rc=$rc after $((SECONDS - start))s, output in $out/$name.txt"
  [[ $rc == 0 ]] || status=1
}
# ${a[@]+"${a[@]}"}: an empty array under set -u, also for bash before 4.4
part sweep1d 240 "$py" benchmarks/sweep1d.py "${sweep[@]}"
part age_step 180 "$py" benchmarks/train_step.py --models=age ${age[@]+"${age[@]}"}
part depth_step 180 "$py" benchmarks/train_step.py --models=depth ${depth[@]+"${depth[@]}"}

echo "== figures"
for name in sweep1d age_step depth_step; do
  grep -E "^[a-z0-9_]+=|_step batch=|^(age|depth) " "$out/$name.txt" | sed "s/^/$name: /"
done
exit $status
