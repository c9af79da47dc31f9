"""Time from the pod's port-22 mapping appearing to an open SSH session (goal: under 1.5 s).

Uses thinnka's own connect step code (poll the pod while the SSH library loads, then SSH
with retries) in the emulated world (``_common.emulated_world``; its Hub is not used) with
random boot delays.
Run: python bench/ssh_ready.py
"""

from __future__ import annotations

import random
import time
from types import SimpleNamespace

from _common import emulated_world, report


def main() -> None:
    from thinnka.clients.runpod import PodSpec
    from thinnka.clients.runpod.graphql import GraphQLRunpod
    from thinnka.clients.ssh import SshTarget, connect, load_ssh_client
    from thinnka.handlers.connect import wait_for_ssh_port

    random.seed(7)
    samples = []
    with emulated_world() as emulated:
        sshd, fake = emulated.sshd, emulated.runpod
        client = GraphQLRunpod(fake.base_url, fake.api_key)
        ctx = SimpleNamespace(services=SimpleNamespace(runpod=client), check_cancelled=lambda: None)
        spec = PodSpec(name="bench", image="img", gpu_type_id="NVIDIA L40S", gpu_count=1,
                       cloud_type="ALL", volume_gb=40, container_disk_gb=40, min_vcpu=4,
                       min_memory_gb=16, env={})  # fmt: skip
        target = SshTarget(sshd.host, sshd.port, sshd.user, sshd.private_key_path)
        for _ in range(12):
            boot = random.uniform(0.5, 4.0)
            fake.set_boot_delay(boot)
            created_at = time.perf_counter()
            pod = client.create_pod(spec)
            deadline = time.monotonic() + 60
            wait_for_ssh_port(ctx, pod.id, deadline, while_waiting=load_ssh_client)  # type: ignore[arg-type]
            with connect(target, deadline=time.monotonic() + 30):
                opened = time.perf_counter()
            samples.append(opened - (created_at + boot))
            client.terminate_pod(pod.id)
    report("port-22 mapping visible → SSH session open", samples, goal=1.5)


if __name__ == "__main__":
    main()
