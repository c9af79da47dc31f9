"""Merge a trained LoRA adapter into its base model (bf16) and push the merged model.

Usage: ``python merge.py merge.json [--no-push]``. merge.json (written by thinnka) holds:
adapter_dir (the training output_dir), base_model, base_revision, merged_dir, hub_model_id,
adapter_hub_id, trust_remote_code, dtype, chat_template (or null), model_card (a file), private.

Fixes the original's merge, which could not succeed: the adapter is read from the training
output (the original looked in the merge folder), no removed huggingface_hub API is used,
remote code and the chat template used in training are honoured, and the merged weights go to
their own repo (the adapter was pushed to ``adapter_hub_id``), with the model card's front
matter first. The HF token comes from the environment or $HF_HOME/token, as huggingface_hub
reads it; it is never printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any


def _strip_front_matter(text: str) -> str:
    return re.sub(r"\A---\n.*?\n---\n", "", text, count=1, flags=re.DOTALL).lstrip()


def _base_card(base: str, revision: str) -> str | None:
    """The base model's own card body, front matter removed (it must not end up mid-file)."""
    try:
        from huggingface_hub import hf_hub_download

        path = hf_hub_download(base, "README.md", revision=revision)
    except Exception as exc:  # a missing or unreachable card only loses the appendix
        print(f"merge: base model card not included ({type(exc).__name__})", flush=True)
        return None
    return _strip_front_matter(Path(path).read_text(encoding="utf-8"))


def merge(settings: dict[str, Any]) -> Path:
    import torch
    import transformers
    from packaging.version import Version
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = settings["adapter_dir"]
    trust = bool(settings.get("trust_remote_code"))
    peft_config = PeftConfig.from_pretrained(adapter)
    base = settings.get("base_model") or peft_config.base_model_name_or_path
    revision = settings.get("base_revision") or "main"
    # The tokenizer saved with the adapter carries the template and any tokens used in training.
    tokenizer = AutoTokenizer.from_pretrained(adapter, trust_remote_code=trust)
    if settings.get("chat_template") and not tokenizer.chat_template:
        tokenizer.chat_template = settings["chat_template"]
    dtype = getattr(torch, settings.get("dtype") or "bfloat16")
    # transformers renamed torch_dtype to dtype in 4.56; Open R1's stack pins 4.52.3.
    dtype_arg = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
    # After training the GPUs are free: spread the bf16 base over them (and CPU) when present.
    device_map = "auto" if torch.cuda.is_available() else None
    model = AutoModelForCausalLM.from_pretrained(
        base,
        revision=revision,
        trust_remote_code=trust,
        device_map=device_map,
        **{dtype_arg: dtype},
    )
    if model.get_input_embeddings().weight.shape[0] != len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    out = Path(settings["merged_dir"])
    out.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    card_path = settings.get("model_card")
    card = (
        Path(card_path).read_text(encoding="utf-8")
        if card_path
        else f"# {settings['hub_model_id']}\n"
    )
    scores = Path(__file__).with_name("scores.json")  # thinnka_eval.py's, from the training
    if scores.exists():
        sys.path.insert(0, str(scores.parent))
        from thinnka_eval import card_section

        card = f"{card.rstrip()}\n\n{card_section(json.loads(scores.read_text()))}"
    appendix = _base_card(base, revision) if settings.get("include_base_card", True) else None
    if appendix:
        card = f"{card.rstrip()}\n\n## Base model card ({base})\n\n{appendix}"
    (out / "README.md").write_text(card, encoding="utf-8")
    print(f"merge: merged model saved to {out}", flush=True)
    return out


def push(settings: dict[str, Any], folder: Path) -> None:
    """Create the repo and upload the merged folder, each retried as the training's final
    push is (thinnka_push.py: 5xx, 429 and dropped connections, with backoff; a refused
    token never). Still failing, the merge fails; the adapter is on the Hub already."""
    from huggingface_hub import HfApi
    from thinnka_push import retried

    api = HfApi()
    repo = settings["hub_model_id"]
    pause = float(os.environ.get("THINNKA_PUSH_PAUSE_S") or 5.0)
    private = bool(settings.get("private"))
    steps = [
        (f"creating {repo}",
         lambda: api.create_repo(repo, repo_type="model", exist_ok=True, private=private)),
        (f"pushing the merged model to {repo}",
         lambda: api.upload_folder(repo_id=repo, folder_path=str(folder), repo_type="model",
                                   commit_message="Merged model (thinnka --merge-model)")),
    ]  # fmt: skip
    for what, call in steps:
        error = retried(what, call, pause)
        if error is not None:
            raise SystemExit(f"merge: {what} failed: {error}")
    print(f"merge: pushed to https://huggingface.co/{repo}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("settings", type=Path)
    parser.add_argument("--no-push", action="store_true", help="merge and save only")
    parser.add_argument(
        "--no-base-card", action="store_true", help="do not download the base model's card"
    )
    args = parser.parse_args(argv)
    settings = json.loads(args.settings.read_text(encoding="utf-8"))
    if args.no_base_card:
        settings["include_base_card"] = False
    folder = merge(settings)
    if not args.no_push:
        push(settings, folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
