"""Where checkpoints go, how often, and what a save costs (thinnka.planning.checkpoints)."""

from __future__ import annotations

from thinnka.options import RunOptions
from thinnka.planning.checkpoints import SAVE_EVERY_S, checkpoint_cadence, checkpoint_cost


def test_saves_come_about_every_twenty_minutes_of_pessimistic_step_time() -> None:
    grpo, sft = checkpoint_cadence(RunOptions()), checkpoint_cadence(RunOptions(sft=True))
    assert (grpo.save_steps, sft.save_steps) == (20, 60)  # 60 s and 20 s a step
    assert grpo.save_steps * 60 == SAVE_EVERY_S
    assert grpo.keep == 1


def test_hub_by_default_and_the_volume_with_one() -> None:
    hub = checkpoint_cadence(RunOptions())
    volume = checkpoint_cadence(RunOptions(network_volume="ckpt"))
    assert (hub.where, hub.hub_strategy) == ("hub", "checkpoint")
    assert (volume.where, volume.hub_strategy) == ("volume", "end")  # only the final push
    assert hub.recipe_keys()["save_strategy"] == "steps"


def test_a_large_full_fine_tune_checkpoint_suggests_a_network_volume() -> None:
    full = checkpoint_cost(RunOptions(), 7_000_000_000, "full", "hub")
    assert full.size_bytes == 7e9 * 10  # bf16 weights + Adam's two fp32 moments
    assert full.upload_s is not None and full.upload_s > 600
    assert full.warning is not None and "--network-volume" in full.warning
    lora = checkpoint_cost(RunOptions(), 7_000_000_000, "qlora", "hub")
    assert lora.warning is None and lora.size_bytes < 1e9
    on_volume = checkpoint_cost(RunOptions(), 7_000_000_000, "full", "volume")
    assert on_volume.upload_s is None and on_volume.warning is None
