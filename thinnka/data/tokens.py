"""Token lengths with the model's own tokenizer, when this machine has it already.

``thinnka plan`` never downloads a model: the tokenizer is used only when the Hub
client's cache holds it (a model used before here) and transformers is installed;
otherwise lengths are counted in characters.

A cache may hold a model's ``tokenizer_config.json`` without its vocabulary (thinnka's
own checks used to download that file alone); transformers then builds a tokenizer that
turns any text into no tokens at all, so one that cannot encode a probe is not used.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["local_tokenizer"]

_PROBE = "The quick brown fox jumps over the lazy dog."


def local_tokenizer(repo_id: str) -> Callable[[list[str]], list[int]] | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "tokenizer_config.json")
        if not isinstance(found, str):
            return None
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(repo_id, local_files_only=True)
        if not tokenizer(_PROBE, add_special_tokens=False)["input_ids"]:
            return None  # no vocabulary: every length would read 0
    except Exception:  # no cache, no transformers, a broken file: characters will do
        return None

    def measure(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    return measure
