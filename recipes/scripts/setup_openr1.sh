#!/usr/bin/env bash
# Installs the Open R1 stack (docs/trainers.md, "The pinned stack") into $VENV and
# Open R1 itself at $OPENR1_DIR, checked out at $OPENR1_REF. Idempotent: a marker keyed by a
# hash of the setup values skips the work when the same values were installed before.
# Values come from the environment (run.env, sourced by job.sh) or from an env file given as
# $1 (KEY='value' lines written by thinnka); nothing is pasted into this script's text.
#   VENV PYTHON_VERSION            uv venv with that Python (3.11)
#   OPENR1_REPO OPENR1_REF OPENR1_DIR   clone (3 tries) or tarball fallback, at that commit
#   TORCH_SPEC VLLM_SPEC           installed first (vLLM is built against torch 2.6.0)
#   FLASH_ATTN                     optional flash-attn pin, built with --no-build-isolation
#   STACK_PACKAGES                   newline-separated extras (peft, bitsandbytes, ...)
#   TRANSFORMERS_SPEC CUSTOM_DEPS  installed last
# No secret is read here, so THINNKA_TRACE=1 may trace every line.
set -euo pipefail
# shellcheck source=setup_common.sh
. "$(dirname "$0")/setup_common.sh"
thinnka_load_env "$@"
: "${VENV:?VENV is not set}" "${OPENR1_DIR:?OPENR1_DIR is not set}" "${OPENR1_REF:?OPENR1_REF is not set}"
: "${OPENR1_REPO:?OPENR1_REPO is not set}" "${EXPECT_TRL:?EXPECT_TRL is not set}"
export DEBIAN_FRONTEND=noninteractive GIT_LFS_SKIP_SMUDGE=1

keys=(TRAINER VENV PYTHON_VERSION TORCH_SPEC TORCH_INDEX_URL VLLM_SPEC FLASH_ATTN STACK_PACKAGES
      TRANSFORMERS_SPEC CUSTOM_DEPS OPENR1_DIR OPENR1_REPO OPENR1_REF EXPECT_TRL NEED_VLLM
      NEED_PEFT NEED_BNB NEED_FLASH_ATTN)
setup_hash=$(for key in "${keys[@]}"; do printf '%s=%s\n' "$key" "${!key-}"; done | sha256sum | cut -d' ' -f1)
marker="$VENV/.thinnka-setup/$setup_hash"
if [ -f "$marker" ] && [ -x "$VENV/bin/python" ] && [ -f "$OPENR1_DIR/.thinnka-ref" ]; then
  echo "thinnka: Open R1 is already installed with these values; skipping setup."
  exit 0
fi

missing=()
for tool in git curl tar gcc; do command -v "$tool" >/dev/null 2>&1 || missing+=("$tool"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "thinnka: installing system packages (missing: ${missing[*]})"
  apt-get update -q
  apt-get install -y -q git curl tar ca-certificates build-essential python3-venv
fi

# Open R1's stack needs its own Python (3.11), which only uv provides here.
uv_bin="$(THINNKA_POD_INSTALLER=uv thinnka_find_uv)"
if [ -z "$uv_bin" ]; then
  echo "thinnka: the Open R1 stack needs uv (for its Python ${PYTHON_VERSION:-3.11}), and uv cannot be installed" >&2
  exit 1
fi
# Open R1 at the pinned commit; a clone at another commit is replaced (never left stale).
if [ "$(cat "$OPENR1_DIR/.thinnka-ref" 2>/dev/null || true)" != "$OPENR1_REF" ]; then
  fetched=0
  for attempt in 1 2 3; do
    rm -rf "$OPENR1_DIR"
    if git clone -q "$OPENR1_REPO" "$OPENR1_DIR" && git -C "$OPENR1_DIR" checkout -q "$OPENR1_REF"; then
      fetched=1
      break
    fi
    echo "thinnka: clone attempt ${attempt} failed" >&2
    sleep 5
  done
  if [ "$fetched" -eq 0 ]; then
    echo "thinnka: cloning failed three times; downloading the ${OPENR1_REF} tarball" >&2
    unpack="$(mktemp -d)"
    curl -fsSL --retry 3 --retry-delay 3 "${OPENR1_REPO%.git}/archive/${OPENR1_REF}.tar.gz" \
      | tar -xz -C "$unpack"
    rm -rf "$OPENR1_DIR"
    mv "$unpack"/* "$OPENR1_DIR"
    rm -rf "$unpack"
  fi
  printf '%s\n' "$OPENR1_REF" > "$OPENR1_DIR/.thinnka-ref"
fi

# The venv is reused only when its Python is the pinned one.
want_py="${PYTHON_VERSION:-3.11}"
if ! WANT_PY="$want_py" "$VENV/bin/python" -c \
    'import os, sys; sys.exit("%d.%d" % sys.version_info[:2] != os.environ["WANT_PY"])' 2>/dev/null; then
  rm -rf "$VENV"
  "$uv_bin" venv -q "$VENV" --python "$want_py" --seed
fi
pip=("$uv_bin" pip install --python "$VENV/bin/python")
thinnka_prefetch_start
lines() { printf '%s\n' "$1" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' -e '/^$/d'; }
mapfile -t packages < <(lines "${STACK_PACKAGES:-}")
mapfile -t custom < <(lines "${CUSTOM_DEPS:-}")

first=()
if [ -n "${VLLM_SPEC:-}" ]; then first+=("$VLLM_SPEC"); fi
if [ -n "${TORCH_SPEC:-}" ]; then first+=("$TORCH_SPEC"); fi
if [ "${#first[@]}" -gt 0 ]; then
  echo "thinnka: installing ${first[*]}"
  "${pip[@]}" "${first[@]}"
fi
if [ -n "${FLASH_ATTN:-}" ]; then
  echo "thinnka: installing ${FLASH_ATTN} (needs torch already installed)"
  "${pip[@]}" setuptools
  "${pip[@]}" --no-build-isolation "$FLASH_ATTN"
else
  "$uv_bin" pip uninstall --python "$VENV/bin/python" flash-attn >/dev/null 2>&1 || true
fi
echo "thinnka: installing Open R1 from ${OPENR1_DIR}"
"${pip[@]}" -e "$OPENR1_DIR"
if [ "${#packages[@]}" -gt 0 ]; then
  echo "thinnka: installing ${packages[*]}"
  "${pip[@]}" "${packages[@]}"
fi
if [ -n "${TRANSFORMERS_SPEC:-}" ]; then
  echo "thinnka: installing ${TRANSFORMERS_SPEC}"
  "${pip[@]}" "$TRANSFORMERS_SPEC"
fi
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
mkdir -p "$VENV/.thinnka-setup"
rm -f "$VENV/.thinnka-setup/"*
touch "$marker"
echo "thinnka: setup complete"
