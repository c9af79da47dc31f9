"""End to end through the emulated Hub: TRL trains the tiny model on CPU and pushes it back.

This is the path a thinnka run takes on a pod (load model + data set from the Hub, train,
`push_to_hub`), shrunk to two SFT steps so it runs in seconds; the ledger then proves the
push really reached the emulator with model files, made by the write token's user.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.plugins.hub_world import HubEnv


@pytest.mark.timeout(180)
def test_trl_sft_two_steps_then_push_to_fake_hub(hub_env: HubEnv, tmp_path: Path) -> None:
    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer

    hub = hub_env.hub
    target = f"{hub.user}/tiny-sft"
    config = SFTConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=2,
        per_device_train_batch_size=2,
        max_length=64,
        use_cpu=True,
        bf16=False,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        dataloader_num_workers=0,
        push_to_hub=True,
        hub_model_id=target,
        hub_token=hub.tokens.write,
    )
    trainer = SFTTrainer(
        model=hub.models.chat,
        args=config,
        train_dataset=load_dataset(hub.datasets.sft, split="train"),
    )
    result = trainer.train()
    assert result.global_step == 2
    trainer.push_to_hub(commit_message="tiny sft")

    commits = hub.commits(target)
    assert commits, "push_to_hub left no commit in the ledger"
    pushed = {path for c in commits for path in c.paths}
    assert {"model.safetensors", "config.json", "tokenizer_config.json"} <= pushed
    assert all(c.user == hub.user and c.token_role == "write" for c in commits)
    assert commits[-1].summary == "tiny sft"
    files = hub.files(target)
    assert files["model.safetensors"] != hub.files(hub.models.chat)["model.safetensors"]
    assert not any(r.status >= 500 for r in hub.requests())
