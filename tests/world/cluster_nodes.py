"""Emulated Instant Cluster nodes: one real sshd per node, each with a file-system root of its own.

Why: thinnka lays a run out under one path on every node (``/workspace``; in the emulated
world ``THINNKA_REMOTE_ROOT``), and on a real cluster each node has its own disk there. Nodes
emulated on one machine must not share that folder, or rank 1 would read rank 0's files and
the test would prove nothing. Each node's sshd therefore runs in its own mount namespace
(``unshare --mount``) where the shared path is bind-mounted from the node's own folder: every
session, job and file of that node sees its own ``/workspace``, under the very path thinnka
was told, with no setting a real user would not set. The network is shared, so nodes reach
each other (and the rendezvous of rank 0) on 127.0.0.1, as ``MASTER_ADDR`` says.

Needs root (a mount namespace) and ``unshare``; ``node_roots_available`` says whether this
machine has them, and tests skip otherwise.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.world.sshd import FakeSshd, find_sshd

__all__ = ["NodeSshd", "node_roots_available"]

# What a node's sessions may get from its key's env, besides the pod's own: Runpod's cluster
# variables (docs/runpod.md, "Instant Clusters").
_CLUSTER_VARS = "MASTER_*,PRIMARY_*,NODE_*,NUM_*,HOST_NODE_ADDR,WORLD_SIZE"


@functools.cache
def node_roots_available() -> bool:
    """True where a mount namespace with a bind mount can be made (root and ``unshare``)."""
    if os.geteuid() != 0 or shutil.which("unshare") is None or find_sshd() is None:
        return False
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "mount", "--bind", "/", "/mnt"],
        capture_output=True,
        timeout=10,
    )
    return probe.returncode == 0


class NodeSshd(FakeSshd):
    """An sshd whose sessions see ``own_root`` at ``shared_root`` (see the module docstring)."""

    def __init__(
        self,
        workdir: Path,
        *,
        shared_root: Path,
        own_root: Path,
        extra_config: Sequence[str] = (),
    ) -> None:
        sshd = find_sshd()
        if sshd is None:
            raise RuntimeError("sshd is not installed")
        workdir.mkdir(parents=True, exist_ok=True)
        own_root.mkdir(parents=True, exist_ok=True)
        self.own_root, self.shared_root = own_root, shared_root
        wrapper = workdir / "sshd-in-node"
        # unshare and sh exec in place: the pid FakeSshd keeps stays the daemon's.
        wrapper.write_text(
            "#!/bin/sh\n"
            "exec unshare --mount --propagation private sh -c "
            '\'own=$1; shared=$2; shift 2; mount --bind "$own" "$shared" && exec "$@"\' '
            f'node "{own_root}" "{shared_root}" "{sshd}" "$@"\n'
        )
        wrapper.chmod(0o755)
        super().__init__(workdir, sshd_path=str(wrapper), extra_config=extra_config)

    def _config(self) -> str:
        # sshd takes a keyword's first value: widen the pod's list rather than append one.
        return (
            super()
            ._config()
            .replace(
                "PermitUserEnvironment RUNPOD_*,",
                f"PermitUserEnvironment {_CLUSTER_VARS},RUNPOD_*,",
            )
        )
