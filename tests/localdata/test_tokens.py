"""Which tokenizer `thinnka plan` measures with: only a whole one from the local cache."""

from __future__ import annotations

import pytest
from huggingface_hub import hf_hub_download, snapshot_download

from tests.plugins.hub_world import HubEnv
from thinnka.data.tokens import local_tokenizer

pytestmark = pytest.mark.timeout(180)


def test_a_cached_tokenizer_config_without_vocabulary_is_not_used(hub_env: HubEnv) -> None:
    # What thinnka's gate left in the cache before it read the Hub with plain requests:
    # transformers builds a tokenizer from this file alone, which counts every text as 0.
    hub = hub_env.hub
    for name in ("config.json", "tokenizer_config.json"):
        hf_hub_download(hub.models.chat, name, endpoint=hub.endpoint, token=False)
    assert local_tokenizer(hub.models.chat) is None


def test_a_whole_cached_tokenizer_measures_in_tokens(hub_env: HubEnv) -> None:
    hub = hub_env.hub
    snapshot_download(hub.models.chat, endpoint=hub.endpoint, token=False)
    measure = local_tokenizer(hub.models.chat)
    assert measure is not None
    short, long = measure(["hi", "hello there, how are you doing today?"])
    assert 0 < short < long
