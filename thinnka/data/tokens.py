"""Token lengths with the model's own tokenizer, when this machine has it already.

``thinnka plan`` never downloads a model: the tokenizer is used only when the Hub
client's cache holds it (a model used before here) and transformers is installed;
otherwise lengths are counted in characters.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["local_tokenizer"]


def local_tokenizer(repo_id: str) -> Callable[[list[str]], list[int]] | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "tokenizer_config.json")
        if not isinstance(found, str):
            return None
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(repo_id, local_files_only=True)
    except Exception:  # no cache, no transformers, a broken file: characters will do
        return None

    def measure(texts: list[str]) -> list[int]:
        return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]

    return measure
