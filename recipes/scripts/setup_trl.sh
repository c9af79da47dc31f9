#!/usr/bin/env bash
# Installs the "trl" trainer's stack into $VENV, from PyPI only, with uv where it can be had
# (else pip), its caches on the volume (setup_common.sh). Idempotent: a marker keyed by a
# hash of the setup values skips the work when the same values were installed before.
# Values come from the environment (run.env, sourced by job.sh) or from an env file given as
# $1 (KEY='value' lines written by thinnka); nothing is pasted into this script's text.
#   VENV               venv to create (--system-site-packages) or reuse
#   TORCH_SPEC         optional torch requirement installed first and held as a constraint,
#                      e.g. torch==2.13.0+cpu with TORCH_INDEX_URL (else the image's torch,
#                      seen through --system-site-packages or, when the image's python is a
#                      virtualenv, a .pth file; or the one vLLM pins; or, on an image
#                      without torch, the one the stack's requirements bring)
#   VLLM_SPEC          optional vLLM requirement (GRPO with vLLM)
#   STACK_PACKAGES     newline-separated pins (trl==..., accelerate==..., ...)
#   TRANSFORMERS_SPEC  transformers requirement, resolved together with the pins
#   CUSTOM_DEPS        newline-separated extra requirements (--custom-dependencies)
#   EXPECT_TRL NEED_*  what the final import check expects
# No secret is read here, so THINNKA_TRACE=1 may trace every line.
set -euo pipefail
# shellcheck source=setup_common.sh
. "$(dirname "$0")/setup_common.sh"
thinnka_load_env "$@"
: "${VENV:?VENV is not set}" "${STACK_PACKAGES:?STACK_PACKAGES is not set}" "${EXPECT_TRL:?EXPECT_TRL is not set}"

keys=(TRAINER VENV PYTHON_VERSION TORCH_SPEC TORCH_INDEX_URL VLLM_SPEC FLASH_ATTN STACK_PACKAGES
      TRANSFORMERS_SPEC CUSTOM_DEPS OPENR1_DIR OPENR1_REPO OPENR1_REF EXPECT_TRL NEED_VLLM
      NEED_PEFT NEED_BNB NEED_FLASH_ATTN)
setup_hash=$(for key in "${keys[@]}"; do printf '%s=%s\n' "$key" "${!key-}"; done | sha256sum | cut -d' ' -f1)
marker="$VENV/.thinnka-setup/$setup_hash"
if [ -f "$marker" ] && [ -x "$VENV/bin/python" ]; then
  echo "thinnka: the trl stack is already installed with these values; skipping setup."
  exit 0
fi

# Before anything is downloaded: the one python the trainer venv is built from, refused
# by name when it cannot carry the stack (trl 1.x, transformers 5.x and accelerate all
# require Python 3.10). Its torch is asked of that same python, never of another.
thinnka_probe_python 3.10 || exit 1
if [ -n "$image_torch" ]; then
  torch_note="with torch ${image_torch} in ${image_torch_dir}"
else
  torch_note="without torch"
fi
kind="$([ "$image_venv" = 1 ] && echo ", a virtualenv" || true)"
echo "thinnka: the image's python is ${image_python} (Python ${image_version}${kind}), ${torch_note}"
# uv builds the venv from exactly that python: never one it would download instead.
export UV_PYTHON_DOWNLOADS=never

uv_bin="$(thinnka_find_uv)"
if [ ! -x "$VENV/bin/python" ]; then
  if [ -n "$uv_bin" ]; then
    "$uv_bin" venv -q --system-site-packages --python "$image_python" "$VENV"
  else
    if ! "$image_python" -m venv --help >/dev/null 2>&1; then
      echo "thinnka: installing python3-venv"
      DEBIAN_FRONTEND=noninteractive apt-get update -q
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
    fi
    # --system-site-packages: the image's CUDA torch is reused instead of downloaded again.
    "$image_python" -m venv --system-site-packages "$VENV"
  fi
  # A venv made from a virtualenv's python (uv and `python -m venv` alike) stands on the
  # virtualenv's BASE interpreter, so --system-site-packages shows the base's packages, not
  # the virtualenv's torch. A .pth file layers the virtualenv's site-packages (and the .pth
  # files in them) right after the venv's own, as that python itself sees them.
  if [ "$image_venv" = 1 ] && [ "${#image_sites[@]}" -gt 0 ]; then
    "$VENV/bin/python" - "$image_python" "${image_sites[@]}" <<'PY'
import os, sys, sysconfig
with open(os.path.join(sysconfig.get_paths()["purelib"], "_thinnka_image_venv.pth"), "w") as f:
    f.write(f"# thinnka: the packages of the image's virtualenv ({sys.argv[1]})\n")
    f.writelines(f"import site; site.addsitedir({path!r})\n" for path in sys.argv[2:])
PY
  fi
  created=1
fi
# The torch this venv imports now: the image's (through the venv's system site-packages or
# the layered virtualenv), or one a previous setup installed into the venv itself.
venv_report="$("$VENV/bin/python" "$(dirname "$0")/probe_python.py")"
venv_torch="$(sed -n 's/^torch\t//p' <<< "$venv_report")"
venv_torch_dir="$(sed -n 's/^torch_dir\t//p' <<< "$venv_report")"
same_torch() { [ "$venv_torch" = "$image_torch" ] && [ -n "$venv_torch_dir" ] \
  && [ "$(readlink -f "$venv_torch_dir")" = "$(readlink -f "$image_torch_dir")" ]; }
# Checked now, not after minutes of installing: a new venv must see the image's torch.
if [ "${created:-0}" = 1 ] && [ -n "$image_torch" ] && ! same_torch; then
  echo "thinnka: the trainer venv ${VENV}, made from ${image_python}, does not see the image's torch ${image_torch} in ${image_torch_dir} (it sees '${venv_torch}' in '${venv_torch_dir}'); not installing a second torch" >&2
  exit 1
fi
thinnka_prefetch_start
constraints="$(mktemp)"
overrides="$(mktemp)"
trap 'rm -f "$constraints" "$overrides"' EXIT
if [ -n "$uv_bin" ]; then
  echo "thinnka: installing with $("$uv_bin" --version)"
  pip=("$uv_bin" pip install --python "$VENV/bin/python")
  pip_show=("$uv_bin" pip show --python "$VENV/bin/python")
  # uv never counts what --system-site-packages (or a .pth file) shows as installed
  # (astral-sh/uv#2500), so without this it would download a second torch of several GB.
  # The torch the venv sees is the stack's torch unless a TORCH_SPEC or vLLM asks for
  # another: its requirement is dropped (a never-true marker), as pip would see it installed.
  if [ -n "$venv_torch" ] && [ -z "${TORCH_SPEC:-}" ] && [ -z "${VLLM_SPEC:-}" ]; then
    printf 'torch; python_version < "0"\n' > "$overrides"
    pip+=(--overrides "$overrides")
    if [ -n "$image_torch" ] && same_torch; then
      echo "thinnka: using the image's torch ${venv_torch} (${venv_torch_dir})"
    else
      echo "thinnka: using the venv's torch ${venv_torch} (${venv_torch_dir})"
    fi
  fi
else
  echo "thinnka: installing with pip"
  # A venv that uv made has no pip of its own.
  "$VENV/bin/python" -m pip --version >/dev/null 2>&1 || "$VENV/bin/python" -m ensurepip -q
  pip=("$VENV/bin/python" -m pip install)
  pip_show=("$VENV/bin/python" -m pip show)
fi

if [ -z "$venv_torch" ] && [ -z "${TORCH_SPEC:-}" ] && [ -z "${VLLM_SPEC:-}" ]; then
  echo "thinnka: no torch on the image: the stack's requirements install one into the venv"
fi

lines() { printf '%s\n' "$1" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e '/^$/d'; }
mapfile -t packages < <(lines "$STACK_PACKAGES")
mapfile -t custom < <(lines "${CUSTOM_DEPS:-}")
if [ -n "${TORCH_SPEC:-}" ]; then
  index=()
  if [ -n "${TORCH_INDEX_URL:-}" ]; then index=(--extra-index-url "$TORCH_INDEX_URL"); fi
  echo "thinnka: installing ${TORCH_SPEC}"
  "${pip[@]}" "${index[@]}" "$TORCH_SPEC"
  # Held for every later install, so nothing swaps in another (e.g. CUDA) torch.
  printf '%s\n' "$TORCH_SPEC" > "$constraints"
  pip+=(-c "$constraints")
fi
wanted=("${packages[@]}")
if [ -n "${VLLM_SPEC:-}" ]; then wanted=("$VLLM_SPEC" "${wanted[@]}"); fi
if [ -n "${TRANSFORMERS_SPEC:-}" ]; then wanted+=("$TRANSFORMERS_SPEC"); fi
echo "thinnka: installing ${wanted[*]}"
"${pip[@]}" "${wanted[@]}"
if [ "${#custom[@]}" -gt 0 ]; then
  echo "thinnka: installing custom dependencies ${custom[*]}"
  "${pip[@]}" "${custom[@]}"
fi

thinnka_prefetch_wait
if ! report="$("$VENV/bin/python" "$(dirname "$0")/check_stack.py" --import)"; then
  printf 'thinnka: setup finished, but the venv is not ready:\n%s\n' "$report" >&2
  exit 1
fi
echo "$report"
if [ "${#custom[@]}" -gt 0 ]; then
  for spec in "${custom[@]}"; do
    name="${spec%%[<>=!~;\[ @]*}"
    if ! "${pip_show[@]}" "$name" >/dev/null 2>&1; then
      echo "thinnka: warning: custom dependency ${name} is not installed as a distribution" >&2
    fi
  done
fi
mkdir -p "$VENV/.thinnka-setup"
rm -f "$VENV/.thinnka-setup/"*
touch "$marker"
echo "thinnka: setup complete"
