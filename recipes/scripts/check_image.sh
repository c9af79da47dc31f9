#!/usr/bin/env bash
# --skip-setup: installs nothing, only checks that the image already has what this run's
# trainer needs, and fails with one clear message listing everything that is missing.
# Values come from the environment (run.env) or from an env file given as $1.
#   TRAINER VENV OPENR1_DIR EXPECT_TRL NEED_VLLM NEED_PEFT NEED_BNB NEED_FLASH_ATTN
set -euo pipefail
# shellcheck source=setup_common.sh
. "$(dirname "$0")/setup_common.sh"
thinnka_load_env "$@"
: "${TRAINER:?TRAINER is not set}" "${VENV:?VENV is not set}" "${EXPECT_TRL:?EXPECT_TRL is not set}"

problems=()
if [ ! -x "$VENV/bin/python" ]; then
  problems+=("no Python venv at ${VENV} (the ${TRAINER} trainer's venv)")
fi
if [ "$TRAINER" = "openr1" ]; then
  for script in grpo sft; do
    if [ ! -f "${OPENR1_DIR:-/opt/open-r1}/src/open_r1/${script}.py" ]; then
      problems+=("no Open R1 checkout at ${OPENR1_DIR:-/opt/open-r1} (src/open_r1/${script}.py missing)")
      break
    fi
  done
fi
if [ -x "$VENV/bin/python" ]; then
  if ! report="$("$VENV/bin/python" "$(dirname "$0")/check_stack.py" 2>&1)"; then
    while IFS= read -r line; do [ -n "$line" ] && problems+=("$line"); done <<< "$report"
  fi
fi
if [ "${#problems[@]}" -gt 0 ]; then
  {
    echo "thinnka: this image cannot run the ${TRAINER} trainer with --skip-setup:"
    for problem in "${problems[@]}"; do echo "  - ${problem}"; done
    echo "Drop --skip-setup to install the trainer, or use an image that has it (for GRPO"
    echo "with vLLM the image needs vllm; --no-vllm avoids that)."
  } >&2
  exit 1
fi
echo "thinnka: the image has what the ${TRAINER} trainer needs; nothing installed."
