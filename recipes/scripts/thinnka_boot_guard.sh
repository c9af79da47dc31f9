#!/bin/sh
# thinnka's boot guard: a bound on the pod from its first second.
#
# thinnka's watchdog (thinnka_watchdog.py) starts with the first job; before that, a pod
# whose orchestrator died while it booted or waited for SSH would bill until someone ran
# `thinnka recover`. thinnka therefore creates every pod with a start command that runs
# this script in the background and then the image's own start script (README: "The pod
# bounds itself from its first second"). It terminates the pod, with the pod-scoped key
# Runpod puts into every pod (RUNPOD_POD_ID, RUNPOD_API_KEY, RUNPOD_API_BASE_URL), when
#   * nobody connected within THINNKA_BOOT_S seconds of the container's start (thinnka
#     waits --ssh-timeout-min for SSH; this is that plus the orphan grace);
#   * thinnka connected (it touches watchdog.heartbeat in the run folder) but no job
#     started and nobody touched it again for THINNKA_ORPHAN_S seconds (the watchdog's
#     rule between jobs, applied before the first one);
#   * the run's deadline THINNKA_DEADLINE (epoch seconds; 0: none) passed, whatever
#     runs: a backstop behind the watchdog, which stops the jobs first (it is told the
#     same deadline two minutes earlier).
# Once a job has started the watchdog guards the rest, and only the deadline is left
# here. A node of an Instant Cluster deletes its whole cluster instead (Runpod refuses to
# delete a member pod alone: 409): the cluster id comes from the run folder's cluster.id,
# which thinnka writes on first contact, else from the API's view of this pod. POSIX sh with
# date, stat, tr and sleep; python3 (or curl and sed) for the API calls. The key never
# appears on a command line. Everything it says goes to the container's log.
set -u

dir=${THINNKA_RUN_DIR:?}
boot=${THINNKA_BOOT_S:-1800}
orphan=${THINNKA_ORPHAN_S:-600}
deadline=${THINNKA_DEADLINE:-0}
poll=$((orphan / 4))
if [ "$poll" -gt 5 ]; then poll=5; fi
if [ "$poll" -lt 1 ]; then poll=1; fi
started=$(date +%s)

log() {
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) thinnka boot guard: $*"
}

job_started() {
  for marker in "$dir"/*.started; do
    if [ -d "$marker" ]; then return 0; fi
  done
  return 1
}

# METHOD URL with the pod's key: prints the HTTP status (0: no answer); with a third
# argument, prints the cluster id the answer (a pod) names instead (empty: none).
api() {
  if command -v python3 >/dev/null 2>&1; then
    THINNKA_METHOD="$1" THINNKA_URL="$2" THINNKA_WANT="${3:-}" python3 -c '
import json, os, urllib.error, urllib.request
request = urllib.request.Request(os.environ["THINNKA_URL"], method=os.environ["THINNKA_METHOD"],
    headers={"Authorization": "Bearer " + os.environ["RUNPOD_API_KEY"],
             "User-Agent": "thinnka-boot-guard/1"})
want = os.environ["THINNKA_WANT"]
try:
    with urllib.request.urlopen(request, timeout=30) as response:
        if want:
            print((json.loads(response.read() or b"{}").get("cluster") or {}).get("id") or "")
        else:
            print(response.status)
except urllib.error.HTTPError as exc:
    print("" if want else exc.code)
except Exception:
    print("" if want else 0)
'
  elif command -v curl >/dev/null 2>&1; then
    # printf is a builtin: the header reaches curl through its stdin, not its argv.
    if [ -n "${3:-}" ]; then
      printf 'header = "Authorization: Bearer %s"\n' "$RUNPOD_API_KEY" |
        curl -s --max-time 30 -K - "$2" | tr -d ' \n' |
        sed -n 's/.*"cluster":{[^}]*"id":"\([^"]*\)".*/\1/p'
    else
      printf 'header = "Authorization: Bearer %s"\n' "$RUNPOD_API_KEY" |
        curl -s -o /dev/null -w '%{http_code}' -X "$1" --max-time 30 -K - "$2" || echo 0
    fi
  elif [ -z "${3:-}" ]; then
    echo 0
  fi
}

# The cluster this pod is a member of: as thinnka wrote it on first contact, else as the
# API says of this pod (Runpod's env names no cluster id). Ids are [A-Za-z0-9_-] only.
cluster_of_pod() {
  if [ -s "$dir/cluster.id" ]; then
    tr -cd 'A-Za-z0-9_-' < "$dir/cluster.id"
  else
    api GET "$1/pods/$RUNPOD_POD_ID" cluster | tr -cd 'A-Za-z0-9_-'
  fi
}

terminate() {
  base=${RUNPOD_API_BASE_URL:-}
  base=${base%/}
  case "$base" in
    "" | https://api.runpod.io) rest="https://rest.runpod.io/v2" ;;
    *) rest="$base/v2" ;;
  esac
  url="$rest/pods/$RUNPOD_POD_ID"
  attempt=1
  delay=2
  while [ "$attempt" -le 5 ]; do
    code=$(api DELETE "$url")
    case "$code" in
      200 | 204 | 404)
        log "HTTP $code: the pod is terminating"
        return 0
        ;;
      409)
        # An Instant Cluster's member: Runpod deletes it only with its whole cluster.
        cluster=$(cluster_of_pod "$rest")
        case "$url" in */clusters/*) cluster="" ;; esac
        if [ -z "$cluster" ]; then
          log "HTTP 409: the API refused; giving up"
          return 1
        fi
        log "HTTP 409: the pod is a member of cluster $cluster; deleting the cluster"
        url="$rest/clusters/$cluster"
        continue
        ;;
      400 | 401 | 403 | 422)
        log "HTTP $code: the API refused; giving up"
        return 1
        ;;
    esac
    log "attempt $attempt failed (HTTP $code)"
    sleep "$delay"
    delay=$((delay * 2))
    attempt=$((attempt + 1))
  done
  return 1
}

if [ -z "${RUNPOD_POD_ID:-}" ] || [ -z "${RUNPOD_API_KEY:-}" ]; then
  log "no RUNPOD_POD_ID/RUNPOD_API_KEY in the pod's env; cannot bound the pod"
  exit 0
fi
log "guarding pod $RUNPOD_POD_ID: first contact within ${boot} s, first job within" \
  "${orphan} s of the last, deadline ${deadline}"
while :; do
  now=$(date +%s)
  if [ "$deadline" -gt 0 ] && [ "$now" -ge "$deadline" ]; then
    why="the run's deadline passed"
    break
  fi
  if job_started; then
    if [ "$deadline" -le 0 ]; then
      log "a job started: the watchdog guards the pod"
      exit 0
    fi
  else
    beat=$(stat -c %Y "$dir/watchdog.heartbeat" 2>/dev/null || echo 0)
    if [ "$beat" -gt 0 ]; then
      if [ $((now - beat)) -ge "$orphan" ]; then
        why="thinnka connected, then no job started for $((now - beat)) s"
        break
      fi
    elif [ $((now - started)) -ge "$boot" ]; then
      why="nobody connected within $((now - started)) s"
      break
    fi
  fi
  sleep "$poll"
done
log "terminating the pod: $why"
round=1
while [ "$round" -le 5 ]; do # the API down or slow: a few more rounds, then give up
  if terminate; then exit 0; fi
  round=$((round + 1))
  sleep 60
done
log "could not terminate the pod; thinnka recover or reap will"
exit 1
