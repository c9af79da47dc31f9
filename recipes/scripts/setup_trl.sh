#!/usr/bin/env bash
# Installs the "trl" trainer's stack into $VENV, from PyPI only, with uv where it can be had
# (else pip), its caches on the volume (setup_common.sh). Idempotent: a marker keyed by a
# hash of the setup values skips the work when the same values were installed before.
# Values come from the environment (run.env, sourced by job.sh) or from an env file given as
# $1 (KEY='value' lines written by thinnka); nothing is pasted into this script's text.
#   VENV               venv to create (--system-site-packages) or reuse
#   TORCH_SPEC         optional torch requirement installed first and held as a constraint,
#                      e.g. torch==2.13.0+cpu with TORCH_INDEX_URL (else the image's torch,
#                      seen through --system-site-packages, or the one vLLM pins)
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

uv_bin="$(thinnka_find_uv)"
if [ ! -x "$VENV/bin/python" ]; then
  if [ -n "$uv_bin" ]; then
    "$uv_bin" venv -q --system-site-packages --python "$python_bin" "$VENV"
  else
    if ! "$python_bin" -m venv --help >/dev/null 2>&1; then
      echo "thinnka: installing python3-venv"
      DEBIAN_FRONTEND=noninteractive apt-get update -q
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
    fi
    # --system-site-packages: the image's CUDA torch is reused instead of downloaded again.
    "$python_bin" -m venv --system-site-packages "$VENV"
  fi
fi
thinnka_prefetch_start
constraints="$(mktemp)"
overrides="$(mktemp)"
trap 'rm -f "$constraints" "$overrides"' EXIT
if [ -n "$uv_bin" ]; then
  echo "thinnka: installing with $("$uv_bin" --version)"
  pip=("$uv_bin" pip install --python "$VENV/bin/python")
  pip_show=("$uv_bin" pip show --python "$VENV/bin/python")
  # uv never counts what --system-site-packages shows as installed (astral-sh/uv#2500), so
  # without this it would download a second torch of several GB. The image's torch is the
  # stack's torch unless a TORCH_SPEC or vLLM asks for another: its requirement is dropped
  # (a never-true marker) and the venv sees the image's torch, as with pip.
  image_torch="$("$python_bin" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null || true)"
  if [ -n "$image_torch" ] && [ -z "${TORCH_SPEC:-}" ] && [ -z "${VLLM_SPEC:-}" ]; then
    printf 'torch; python_version < "0"\n' > "$overrides"
    pip+=(--overrides "$overrides")
    echo "thinnka: using the image's torch ${image_torch}"
  fi
else
  echo "thinnka: installing with pip"
  # A venv that uv made has no pip of its own.
  "$VENV/bin/python" -m pip --version >/dev/null 2>&1 || "$VENV/bin/python" -m ensurepip -q
  pip=("$VENV/bin/python" -m pip install)
  pip_show=("$VENV/bin/python" -m pip show)
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
