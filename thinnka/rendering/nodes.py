"""Per-node files of a ``--nodes`` run: one accelerate config and a few env values per node.

Every node runs the same ``accelerate launch`` of the same recipe; what differs is said here
(docs/runpod.md, "Instant Clusters"):

- ``accelerate.yaml``: ``num_machines`` (the nodes), ``machine_rank`` (this node's
  ``NODE_RANK``), ``main_process_ip``/``main_process_port`` (the primary's ``MASTER_ADDR``/
  ``MASTER_PORT`` as the node reports them). ``num_processes`` stays the total over all
  nodes, which is what accelerate expects. On GPUs accelerate hands these to torchrun
  (DeepSpeed's ``standard`` multinode launcher).
- ``run.env`` additions: ``NCCL_SOCKET_IFNAME=ens1``, because Runpod's inter-node network is
  on ``ens1``-``ens8`` (``eth0`` is for the internet and times out); only rank 0 makes the
  final push and writes the run's marker (``THINNKA_FINAL_JOB`` is empty elsewhere); and on
  CPU (``use_cpu``, the emulated cluster) the ranks accelerate's CPU launcher reads from the
  environment instead of starting torchrun (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
  ``LOCAL_WORLD_SIZE``: one process per node).
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["node_accelerate", "node_env"]

NCCL_INTERFACE = "ens1"


def node_accelerate(
    accelerate: dict[str, Any], *, nodes: int, rank: int, master_addr: str, master_port: int
) -> str:
    """This node's ``accelerate.yaml``, from the run's."""
    data = dict(accelerate)
    data.update(
        num_machines=nodes,
        machine_rank=rank,
        main_process_ip=master_addr,
        main_process_port=master_port,
    )
    if data.get("use_cpu"):
        data["distributed_type"] = "MULTI_CPU"
    text: str = yaml.safe_dump(data, sort_keys=False)
    return text


def node_env(run_env: dict[str, str], *, nodes: int, rank: int, use_cpu: bool) -> dict[str, str]:
    """This node's ``run.env`` values, from the run's."""
    env = dict(run_env)
    env["THINNKA_NODE_RANK"] = str(rank)
    env["THINNKA_NUM_NODES"] = str(nodes)
    if rank != 0:
        env["THINNKA_FINAL_JOB"] = ""  # rank 0 alone pushes and marks the push
    if use_cpu:
        env.update(RANK=str(rank), WORLD_SIZE=str(nodes), LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
    else:
        env["NCCL_SOCKET_IFNAME"] = NCCL_INTERFACE
    return env
