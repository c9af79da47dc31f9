"""Time from the pod's port-22 mapping appearing to an open SSH session (goal: under 1.5 s).

Uses thinnka's own connect step code (poll the pod, then SSH with retries)
against the Runpod emulator with random boot delays and a real sshd.
Run: python bench/ssh_ready.py
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from _common import report


def main() -> None:
    from tests.fakes.runpod import FakeRunpod
    from tests.fakes.sshd import FakeSshd
    from thinnka.clients.runpod import PodSpec
    from thinnka.clients.runpod.graphql import GraphQLRunpod
    from thinnka.clients.ssh import SshTarget, connect
    from thinnka.handlers.connect import wait_for_ssh_port

    random.seed(7)
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        sshd = FakeSshd(Path(tmp) / "sshd").start()
        fake = FakeRunpod(ssh_host=sshd.host, ssh_port=sshd.port).start()
        client = GraphQLRunpod(fake.base_url, fake.api_key)
        ctx = SimpleNamespace(services=SimpleNamespace(runpod=client), check_cancelled=lambda: None)
        spec = PodSpec(name="bench", image="img", gpu_type_id="NVIDIA L40S", gpu_count=1,
                       cloud_type="ALL", volume_gb=40, container_disk_gb=40, min_vcpu=4,
                       min_memory_gb=16, env={})  # fmt: skip
        for _ in range(12):
            boot = random.uniform(0.5, 4.0)
            fake.set_boot_delay(boot)
            created_at = time.perf_counter()
            pod = client.create_pod(spec)
            wait_for_ssh_port(ctx, pod.id, time.monotonic() + 60)  # type: ignore[arg-type]
            target = SshTarget(sshd.host, sshd.port, sshd.user, sshd.private_key_path)
            with connect(target, deadline=time.monotonic() + 30):
                opened = time.perf_counter()
            samples.append(opened - (created_at + boot))
            client.terminate_pod(pod.id)
        fake.stop()
        sshd.stop()
    report("port-22 mapping visible → SSH session open", samples, goal=1.5)


if __name__ == "__main__":
    main()
