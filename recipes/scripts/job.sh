#!/usr/bin/env bash
# Runs one thinnka job (setup, train, merge) on the pod, detached from any SSH
# session: thinnka starts it with setsid/nohup, so a dropped connection or a
# dead orchestrator does not stop it. Usage (in the run folder): job.sh NAME
#   NAME.cmd   the command, written by thinnka with every argument shell-quoted
#   NAME.pid   this job's pid, written first
#   NAME.exit  its exit code, written last (atomically)
# Values come from run.env (KEY='value' lines); nothing is interpolated here.
set -uo pipefail
name="$1"
cd "$(dirname "$0")"
echo "$$" > "${name}.pid.tmp" && mv "${name}.pid.tmp" "${name}.pid"
if [ -f run.env ]; then
  set -a
  # shellcheck disable=SC1091
  . ./run.env
  set +a
fi
# The pod's dead-man switch (thinnka_watchdog.py): one per run folder (it locks
# watchdog.lock and exits at once when another holds it), in its own session so
# stopping a job never stops it. No python3 on the image: no watchdog, say so.
if [ -f watchdog.json ] && [ -f thinnka_watchdog.py ]; then
  if command -v python3 >/dev/null 2>&1; then
    setsid nohup python3 ./thinnka_watchdog.py . >> watchdog.log 2>&1 < /dev/null &
  else
    echo "thinnka: no python3 on this image; the pod's watchdog cannot run" >&2
  fi
fi
# train.sh records the final push after the chain's last job (THINNKA_FINAL_JOB).
export THINNKA_JOB="${name}"
if [ "${THINNKA_TRACE:-0}" = "1" ]; then export PS4='+ '; fi
bash "./${name}.cmd"
status=$?
echo "$status" > "${name}.exit.tmp" && mv "${name}.exit.tmp" "${name}.exit"
exit "$status"
