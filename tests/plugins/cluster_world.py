"""pytest fixtures for emulated Instant Cluster nodes (``tests/world/cluster_nodes.py``).

``cluster_nodes(shared_root, count)`` starts one sshd per node, each seeing a folder of its own
at ``shared_root``, and tells the Runpod emulator to give node ``rank`` the ``rank``-th; they
are stopped, and the emulator told to forget them, after the test. They need root and a mount
namespace: a skip elsewhere, a failure under CI (``CI=true``), as with sshd.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.plugins.runpod_world import in_ci
from tests.world.cluster_nodes import NodeSshd, node_roots_available
from tests.world.runpod import FakeRunpod

__all__ = ["cluster_nodes"]

MakeNodes = Callable[..., list[NodeSshd]]


@pytest.fixture
def cluster_nodes(tmp_path: Path, runpod_account: FakeRunpod) -> Iterator[MakeNodes]:
    started: list[NodeSshd] = []

    def make(shared_root: Path, count: int = 2) -> list[NodeSshd]:
        if not node_roots_available():
            reason = "emulated cluster nodes need root and `unshare --mount` (a mount namespace)"
            if in_ci():  # CI runs as root on purpose: a skip there would hide the 2-node test
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)
        nodes = []
        for rank in range(count):
            node = NodeSshd(
                tmp_path / f"node{rank}-sshd",
                shared_root=shared_root,
                own_root=tmp_path / f"node{rank}-root",
            )
            node.start()
            started.append(node)
            nodes.append(node)
        runpod_account.set_cluster_nodes(nodes)
        return nodes

    yield make
    runpod_account.set_cluster_nodes([])
    for node in started:
        node.stop()
