"""Per-node files of a ``--nodes`` run (``rendering/nodes.py``): what differs between nodes."""

from __future__ import annotations

import yaml

from thinnka.options import RunOptions, validate
from thinnka.planning.facts import ModelContext, RemotePaths
from thinnka.rendering import render
from thinnka.rendering.nodes import node_accelerate, node_env

MODEL = ModelContext(hub_model_id="me/out", has_chat_template=True)
PATHS = RemotePaths(run_dir="/w/r", output_dir="/w/o", venv="/v", hf_home="/w/hf")
BASE_ENV = {"THINNKA_FINAL_JOB": "train", "THINNKA_RUN_ID": "r-1"}


def test_every_node_gets_its_rank_and_the_primarys_rendezvous() -> None:
    rendered = render(validate(RunOptions(sft=True, gpu_count=8, nodes=2)), MODEL, PATHS)
    assert rendered.accelerate["num_processes"] == 16  # accelerate wants the total
    assert rendered.accelerate["num_machines"] == 2
    for rank in (0, 1):
        text = node_accelerate(rendered.accelerate, nodes=2, rank=rank,
                               master_addr="10.65.0.2", master_port=29500)  # fmt: skip
        config = yaml.safe_load(text)
        assert (config["machine_rank"], config["num_machines"]) == (rank, 2)
        assert (config["main_process_ip"], config["main_process_port"]) == ("10.65.0.2", 29500)
        assert config["distributed_type"] == "DEEPSPEED"
        assert config["deepspeed_config"]["zero_stage"] == 3
        assert config["deepspeed_config"]["deepspeed_multinode_launcher"] == "standard"


def test_gpu_nodes_talk_over_ens1_and_only_rank_0_pushes() -> None:
    primary = node_env(BASE_ENV, nodes=2, rank=0, use_cpu=False)
    worker = node_env(BASE_ENV, nodes=2, rank=1, use_cpu=False)
    assert primary["NCCL_SOCKET_IFNAME"] == worker["NCCL_SOCKET_IFNAME"] == "ens1"
    assert primary["THINNKA_FINAL_JOB"] == "train" and worker["THINNKA_FINAL_JOB"] == ""
    assert "RANK" not in worker  # torchrun sets the ranks of GPU processes


def test_cpu_nodes_are_one_gloo_rank_each() -> None:
    options = validate(RunOptions(sft=True, gpu_count=8, nodes=2, overrides=(("use_cpu", "true"),)))
    rendered = render(options, MODEL, PATHS)
    config = yaml.safe_load(
        node_accelerate(
            rendered.accelerate, nodes=2, rank=1, master_addr="127.0.0.1", master_port=1234
        )
    )
    assert config["distributed_type"] == "MULTI_CPU" and config["num_processes"] == 2
    env = node_env(BASE_ENV, nodes=2, rank=1, use_cpu=True)
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"]) == ("1", "2", "0")
    assert "NCCL_SOCKET_IFNAME" not in env
