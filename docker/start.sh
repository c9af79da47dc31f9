#!/usr/bin/env bash
# The pod's start command: install the key Runpod passes in PUBLIC_KEY, start sshd, stay up.
# Runpod's own images do the same in their start script; thinnka needs nothing else running.
set -euo pipefail
if [ -n "${PUBLIC_KEY:-}" ]; then
  install -d -m 700 /root/.ssh
  printf '%s\n' "$PUBLIC_KEY" >> /root/.ssh/authorized_keys
  chmod 600 /root/.ssh/authorized_keys
fi
ssh-keygen -A >/dev/null
/usr/sbin/sshd
exec sleep infinity
