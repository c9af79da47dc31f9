#!/usr/bin/env bash
# Launches the trainer on the pod: venv, GPU preflight, secrets from files.
# Usage: train.sh COMMAND... (run by job.sh; values come from run.env).
set -euo pipefail
# shellcheck disable=SC1091
. "${VENV}/bin/activate"
if [ "${THINNKA_USE_CPU:-false}" != "true" ]; then
  gpus=$( (nvidia-smi -L 2>/dev/null || true) | grep -c '^GPU' || true)
  if [ "${gpus}" -eq 0 ]; then
    echo "No GPU is visible on the pod (nvidia-smi lists none). Check the pod's GPU allocation," \
         "or render the recipe with use_cpu=true to train on the CPU." >&2
    exit 3
  fi
fi
# Secrets are read from 0600 files, never passed as arguments; tracing stays
# off while they are handled.
{ set +x; } 2>/dev/null
if [ -f wandb_key ]; then
  WANDB_API_KEY="$(cat wandb_key)"
  export WANDB_API_KEY
fi
if [ "${THINNKA_TRACE:-0}" = "1" ]; then set -x; fi
# A training restarted on a new pod (its earlier pod was lost) resumes from a checkpoint:
# thinnka_restore.py puts it into the output folder (from the Hub, or finds it on the
# network volume), where the trainer's get_last_checkpoint picks it up.
if [ "${THINNKA_JOB:-}" = "train" ] && [ -n "${THINNKA_RESTORE_STEP:-}" ]; then
  python thinnka_restore.py
fi
# The last job of the chain (THINNKA_FINAL_JOB, from run.env; THINNKA_JOB from job.sh) made
# the final push once it exits 0: only then is thinnka-run.json written to the Hub, which is
# what thinnka's push check looks for (every earlier commit may be a checkpoint). A job the
# watchdog stops at the deadline is killed with its session, so it never gets here.
if [ -n "${THINNKA_FINAL_JOB:-}" ] && [ "${THINNKA_JOB:-}" = "${THINNKA_FINAL_JOB}" ]; then
  # A trainer that saved its model and then failed only in its final push (one Hub 5xx
  # fails transformers' create_commit) must not cost the model: thinnka_push.py pushes the
  # output folder with retries (exit 0), or finds no model this job saved (3: the trainer's
  # own status stands), or keeps it on the pod for a push by hand (75: push_failed).
  export THINNKA_JOB_STAMP="${PWD}/${THINNKA_JOB}.stamp"
  touch "${THINNKA_JOB_STAMP}"
  status=0
  "$@" || status=$?
  # Only the training's output folder: a merge pushes a model of its own (merge.py).
  if [ "${status}" -ne 0 ] && [ "${THINNKA_JOB}" = "train" ]; then
    pushed=0
    python thinnka_push.py || pushed=$?
    if [ "${pushed}" -eq 3 ]; then exit "${status}"; fi
    if [ "${pushed}" -ne 0 ]; then exit "${pushed}"; fi
  elif [ "${status}" -ne 0 ]; then
    exit "${status}"
  fi
  exec python thinnka_mark.py
fi
exec "$@"
