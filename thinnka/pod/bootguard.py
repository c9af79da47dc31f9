"""The pod's boot guard, from the orchestrator's side: the start command and its env.

The watchdog (``thinnka.pod.watchdog``) starts with the first job. Before that only the
orchestrator bounds the pod, so a process that dies while the pod boots or waits for SSH
would leave it billing until ``recover``. Every pod is therefore created with a start
command that runs ``recipes/scripts/thinnka_boot_guard.sh`` in the background and then
the image's own start script. On Runpod the start command (REST v2 ``args``, GraphQL
``dockerArgs``) replaces the image's CMD while its ENTRYPOINT stays, so the command runs
thinnka's own image's start script, else the one every Runpod image has as its CMD
(``/start.sh``: it installs ``PUBLIC_KEY`` and starts sshd); an image with neither keeps the
container up and must start sshd from its ENTRYPOINT. The guard's script and its bounds
travel in the pod's env (base64: one line, no quoting on the way), never a secret.
"""

from __future__ import annotations

import base64
import math
from typing import TYPE_CHECKING

from thinnka.options.limits import orphan_grace_s, run_limit
from thinnka.resources import resource_dir

if TYPE_CHECKING:
    import datetime as dt

    from thinnka.options import RunOptions

__all__ = ["CLUSTER_ID_FILE", "GUARD_MARGIN_S", "START_COMMAND", "START_SCRIPTS", "boot_guard_env"]

SCRIPT = "thinnka_boot_guard.sh"
# A node of an Instant Cluster cannot be deleted alone (409): its guard deletes the cluster.
# Runpod's env names no cluster id and a cluster's env is fixed before its id exists, so
# thinnka writes it into the run folder on first contact; before that the guard asks the API
# for its own pod, whose ``cluster.id`` names it.
CLUSTER_ID_FILE = "cluster.id"
# The images' own start scripts (their CMD), in the order tried: thinnka's image first,
# since it is built on a Runpod image and has that image's /start.sh too.
START_SCRIPTS = ("/opt/thinnka/start.sh", "/start.sh")
# The guard's deadline comes this long after the watchdog's, which stops the jobs and
# records why first; the guard is the backstop for a pod whose watchdog never ran.
GUARD_MARGIN_S = 120.0

START_COMMAND = (
    "sh -c '"
    'sh -c "$(printf %s "$THINNKA_BOOT_GUARD" | base64 -d)" thinnka-boot-guard & '
    f"for s in {' '.join(START_SCRIPTS)}; do "
    'if [ -x "$s" ]; then exec "$s"; fi; done; '
    "while :; do sleep 3600; done'"
)


def boot_guard_env(
    options: RunOptions, run_dir: str, created_at: dt.datetime, price_per_hour: float | None
) -> dict[str, str]:
    """The guard's script and bounds for a pod created at ``created_at`` (see the script).

    Before the first SSH contact the pod waits as long as thinnka itself waits for SSH,
    plus the orphan grace; after it, the orphan grace without a job, as between jobs.
    """
    grace = orphan_grace_s(options)
    limit = run_limit(options, created_at, price_per_hour)
    deadline = limit.at.timestamp() + GUARD_MARGIN_S if limit is not None else 0
    script = (resource_dir("recipes") / "scripts" / SCRIPT).read_bytes()
    return {
        "THINNKA_BOOT_GUARD": base64.b64encode(script).decode(),
        "THINNKA_RUN_DIR": run_dir,
        "THINNKA_BOOT_S": str(math.ceil(options.ssh_timeout_min * 60 + grace)),
        "THINNKA_ORPHAN_S": str(math.ceil(grace)),
        "THINNKA_DEADLINE": str(math.ceil(deadline)),
    }
