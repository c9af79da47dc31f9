# Sourced by setup_trl.sh, setup_openr1.sh and check_image.sh (never run on its own): the
# pieces the three share, so they agree on where values, caches and the installer come from.
#
#   THINNKA_CACHE_DIR      on the pod's volume: uv's and pip's caches and the small tool venvs,
#                          so a later setup on the same pod downloads nothing again (the
#                          volume is deleted with its pod)
#   THINNKA_POD_INSTALLER  uv (default: uv where it can be had, else pip) or pip
#   THINNKA_PYTHON         the image's python (default python3, as found on PATH)
#   UV_SPEC                the uv release to bootstrap from PyPI when the image has none
#   THINNKA_PREFETCH_MODEL / THINNKA_PREFETCH_DATASET   downloaded into $HF_HOME while the
#                          stack installs (prefetch.py)
# No secret is read here.

# Values come from the environment (run.env, sourced by job.sh) or from an env file given as
# the script's first argument (KEY='value' lines written by thinnka).
thinnka_load_env() {
  if [ "$#" -ge 1 ]; then
    set -a
    # shellcheck disable=SC1090
    . "$1"
    set +a
  fi
  if [ "${THINNKA_TRACE:-0}" = "1" ]; then set -x; fi
  python_bin="${THINNKA_PYTHON:-python3}"
  if [ -n "${THINNKA_CACHE_DIR:-}" ]; then
    mkdir -p "$THINNKA_CACHE_DIR"
    export UV_CACHE_DIR="$THINNKA_CACHE_DIR/uv" PIP_CACHE_DIR="$THINNKA_CACHE_DIR/pip"
  fi
  # The cache (volume) and the venvs (container disk) are different file systems.
  export UV_LINK_MODE=copy PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
  # uv trusts the image's certificate store (ca-certificates), as curl and git do, rather
  # than only its bundled roots: a pod behind a TLS-inspecting proxy works with both tools.
  if [ -s /etc/ssl/certs/ca-certificates.crt ]; then export UV_SYSTEM_CERTS="${UV_SYSTEM_CERTS:-1}"; fi
}

# Resolves the image's python ($python_bin) once, asks it what it is (probe_python.py, run
# by that python) and refuses, before anything is downloaded, one that cannot carry a stack
# needing Python $1: missing, not running, or too old. The message names the interpreter and
# what it lacks. Sets
#   image_python   its sys.executable, the interpreter the trainer venv is built from: a
#                  pyenv shim resolved, a virtualenv's python kept as itself
#   image_version  X.Y.Z              image_venv  1 when it is a virtualenv, else 0
#   image_sites    its site-packages folders (array), a virtualenv's own first
#   image_torch image_torch_dir       its torch's version and folder; empty without torch
thinnka_probe_python() {
  local need="$1" found report key value probe
  probe="$(dirname "$0")/probe_python.py"
  if ! found="$(command -v "$python_bin")"; then
    echo "thinnka: the image has no ${python_bin} on its PATH (${PATH}); the ${TRAINER:-trl} stack needs Python ${need} or newer" >&2
    return 1
  fi
  # A pyenv shim is a script that runs the interpreter pyenv picks: that one is the python.
  if [[ "$found" == */shims/* ]] && command -v pyenv >/dev/null 2>&1; then
    found="$(pyenv which "$python_bin" 2>/dev/null || echo "$found")"
  fi
  # Bounded: a python that hangs at start-up is as unusable as one that fails.
  if ! report="$(timeout 60 "$found" "$probe" 2>/dev/null)"; then
    local err why
    err="$(timeout 60 "$found" "$probe" 2>&1 >/dev/null || true)"
    why="$(grep -E 'Error|error' <<< "$err" | tail -n 3 || true)"
    if [ -z "$why" ]; then why="$(grep -v '^[[:space:]]*$' <<< "$err" | tail -n 4 || true)"; fi
    printf "thinnka: the image's %s (%s) does not run:\n%s\n" "$python_bin" "$found" "$why" >&2
    return 1
  fi
  image_python="" image_version="" image_venv=0 image_torch="" image_torch_dir=""
  image_sites=()
  while IFS=$'\t' read -r key value; do
    case "$key" in
      executable) image_python="$value" ;;
      version) image_version="$value" ;;
      venv) image_venv="$value" ;;
      site) image_sites+=("$value") ;;
      torch) image_torch="$value" ;;
      torch_dir) image_torch_dir="$value" ;;
    esac
  done <<< "$report"
  image_python="${image_python:-$found}"
  local have=0 want
  if [[ "$image_version" =~ ^([0-9]+)\.([0-9]+) ]]; then
    have=$(( BASH_REMATCH[1] * 1000 + BASH_REMATCH[2] ))
  fi
  [[ "$need" =~ ^([0-9]+)\.([0-9]+) ]]
  want=$(( BASH_REMATCH[1] * 1000 + BASH_REMATCH[2] ))
  if [ "$have" -lt "$want" ]; then
    echo "thinnka: the image's ${python_bin} is ${image_python} (Python ${image_version:-of unknown version}); the ${TRAINER:-trl} stack needs Python ${need} or newer. Use an image with a newer python3, or point THINNKA_POD_PYTHON at one." >&2
    return 1
  fi
}

# Prints the uv binary to install with, or nothing when pip must do: uv from the image, else
# uv from PyPI into a small venv kept with the caches (installed once per volume).
thinnka_find_uv() {
  if [ "${THINNKA_POD_INSTALLER:-uv}" = "pip" ]; then return 0; fi
  if command -v uv >/dev/null 2>&1; then
    command -v uv
    return 0
  fi
  local home="${THINNKA_CACHE_DIR:-/opt}/thinnka-uv"
  if [ ! -x "$home/bin/uv" ]; then
    rm -rf "$home"
    if ! { "${image_python:-$python_bin}" -m venv "$home" \
        && "$home/bin/python" -m pip install -q "uv${UV_SPEC:-}"; } >&2 2>/dev/null; then
      rm -rf "$home"
      echo "thinnka: uv cannot be installed here; installing with pip" >&2
      return 0
    fi
  fi
  echo "$home/bin/uv"
}

# Starts prefetch.py in the background (its pid in $prefetch_pid) with a python that already
# has huggingface_hub: the trainer venv when it exists, else a tool venv kept with the caches.
thinnka_prefetch_start() {
  prefetch_pid=""
  if [ -z "${THINNKA_PREFETCH_MODEL:-}${THINNKA_PREFETCH_DATASET:-}" ]; then return 0; fi
  local has_hub='import importlib.util, sys; sys.exit(importlib.util.find_spec("huggingface_hub") is None)'
  local py=""
  if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "$has_hub" 2>/dev/null; then
    py="$VENV/bin/python"
  elif [ -n "${THINNKA_CACHE_DIR:-}" ]; then
    local tool="$THINNKA_CACHE_DIR/thinnka-hub"
    if [ ! -x "$tool/bin/python" ] || ! "$tool/bin/python" -c "$has_hub" 2>/dev/null; then
      rm -rf "$tool"
      if [ -n "${uv_bin:-}" ]; then
        "$uv_bin" venv -q --python "${image_python:-$python_bin}" "$tool" \
          && "$uv_bin" pip install -q --python "$tool/bin/python" huggingface_hub || rm -rf "$tool"
      else
        "${image_python:-$python_bin}" -m venv "$tool" \
          && "$tool/bin/python" -m pip install -q huggingface_hub || rm -rf "$tool"
      fi
    fi
    if [ -x "$tool/bin/python" ]; then py="$tool/bin/python"; fi
  fi
  if [ -z "$py" ]; then
    echo "thinnka: no python with huggingface_hub yet; the trainer downloads the model itself"
    return 0
  fi
  timeout "${THINNKA_PREFETCH_TIMEOUT:-1800}" "$py" "$(dirname "$0")/prefetch.py" > prefetch.log 2>&1 &
  prefetch_pid=$!
}

# Waits for the prefetch (bounded by its timeout) and reports it; its failure never fails
# the setup: the trainer then downloads what is missing itself, with its own errors.
thinnka_prefetch_wait() {
  if [ -z "${prefetch_pid:-}" ]; then return 0; fi
  local status=0
  wait "$prefetch_pid" || status=$?
  if [ "$status" -eq 0 ]; then
    tail -n 3 prefetch.log
  elif [ "$status" -eq 124 ]; then
    echo "thinnka: the download did not finish in time; the trainer continues it"
  else
    echo "thinnka: the download failed (the trainer retries it):"
    tail -n 5 prefetch.log
  fi
}
