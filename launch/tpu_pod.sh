#!/usr/bin/env bash
# Runs one regcls_jax command on every worker of an existing Cloud TPU VM (a pod slice or a
# single host). Creates nothing: make the TPU first (gcloud compute tpus tpu-vm create ...).
#
# Usage:
#   launch/tpu_pod.sh --tpu=NAME --zone=ZONE [--project=PROJECT] [--source=SRC] \
#       [--venv=~/regcls-venv] [--dry_run] -- --config=configs/imdbwiki.py --workdir=gs://.../w
#
#   --tpu, --zone   the TPU VM (required).
#   --project       the GCP project (default: gcloud's configured one).
#   --source        the repository every worker runs: a git URL (cloned to ~/regcls-jax, or
#                   updated there), or a checkout that already exists on every worker
#                   (required). The command runs from it, so configs/... paths resolve.
#   --venv          the virtual environment created on every worker (default ~/regcls-venv).
#   --dry_run       print the gcloud command instead of running it.
#   after --        the arguments of `python -m regcls_jax.main` (--config and --workdir are
#                   required; --workdir must be on a filesystem every worker mounts, e.g.
#                   NFS / Filestore or a gcsfuse bucket, so all see the same checkpoints).
#
# Every worker starts the same program; REGCLS_DISTRIBUTED=auto makes it call
# jax.distributed.initialize(), which finds the other workers through the TPU metadata. Each
# worker then reads its block of every global batch and Orbax writes the checkpoints together.
set -euo pipefail

die() { echo "error: $*" >&2; echo "usage: launch/tpu_pod.sh --tpu=NAME --zone=ZONE --source=SRC [--project=P] [--venv=DIR] [--dry_run] -- MAIN_ARGS" >&2; exit 2; }

tpu="" zone="" project="" source="" venv="~/regcls-venv" dry_run=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tpu=*) tpu="${1#*=}" ;;
    --zone=*) zone="${1#*=}" ;;
    --project=*) project="${1#*=}" ;;
    --source=*) source="${1#*=}" ;;
    --venv=*) venv="${1#*=}" ;;
    --dry_run) dry_run=1 ;;
    --) shift; break ;;
    *) die "unknown argument '$1' (the arguments of regcls_jax.main go after --)" ;;
  esac
  shift
done
[[ -n "$tpu" ]] || die "--tpu is required"
[[ -n "$zone" ]] || die "--zone is required"
[[ -n "$source" ]] || die "--source is required (a git URL or a path present on every worker)"
[[ $# -gt 0 ]] || die "missing '-- --config=... --workdir=...' (the arguments of regcls_jax.main)"
main_args=("$@")
printf '%s\n' "${main_args[@]}" | grep -q -- '^--config' || die "the arguments after -- need --config=..."
printf '%s\n' "${main_args[@]}" | grep -q -- '^--workdir' || die "the arguments after -- need --workdir=..."

quoted_args=$(printf ' %q' "${main_args[@]}")
if [[ "$source" == *://* || "$source" == git@* ]]; then
  checkout="~/regcls-jax"
  fetch="if [ -d ${checkout}/.git ]; then git -C ${checkout} pull -q; else git clone -q $(printf '%q' "$source") ${checkout}; fi"
else
  checkout=$(printf '%q' "$source")
  fetch="[ -f ${checkout}/pyproject.toml ] || { echo 'error: no checkout at ${checkout}' >&2; exit 2; }"
fi
remote="set -e
${fetch}
cd ${checkout}
python3 -m venv ${venv}
. ${venv}/bin/activate
python -m pip install -q -U pip
python -m pip install -q 'jax[tpu]' -e .
export REGCLS_DISTRIBUTED=auto
python -m regcls_jax.main${quoted_args}"

cmd=(gcloud compute tpus tpu-vm ssh "$tpu" --zone="$zone" --worker=all --command="$remote")
[[ -n "$project" ]] && cmd+=(--project="$project")
if [[ $dry_run -eq 1 ]]; then
  printf '%q ' "${cmd[@]}"; echo
  exit 0
fi
command -v gcloud >/dev/null || die "gcloud not found: install the Google Cloud CLI"
exec "${cmd[@]}"
