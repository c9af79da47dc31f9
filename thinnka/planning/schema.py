"""The recipe-key whitelists: which keys a trainer's parser takes, and each key's type.

TRL's ``TrlParser`` drops unknown YAML keys without a word (an unknown CLI flag errors), so a
typo in a recipe silently trains with a default. Every key thinnka writes, and every ``--set``
key, is checked here against the whitelist generated from the trainer's own dataclasses
(``recipes/schema/{trainer}_{mode}.json``), and ``--set`` values get the key's type.

Run ``python tools/schema_gen.py --regenerate`` (an offline tool, outside the runtime package)
to rewrite the TRL files from the installed TRL; ``recipes/schema/README.md`` explains the
Open R1 files.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from thinnka.errors import ConfigError
from thinnka.resources import resource_dir

__all__ = ["ALIASES", "KeySpec", "Schema", "check_keys", "coerce", "load_schema", "schema_path"]

# Keys that were renamed between the two stacks' TRL/transformers versions. A recipe or --set
# that uses the other stack's spelling is translated (with a note) instead of being refused,
# because the meaning is identical.
ALIASES: dict[str, dict[str, str]] = {
    "trl": {"torch_dtype": "dtype", "max_seq_length": "max_length", "warmup_ratio": "warmup_steps"},
    "openr1": {"dtype": "torch_dtype"},
}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NULL = {"null", "~"}
_INT = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class KeySpec:
    """One recipe key: the types its value may take, and the allowed strings if it has a list."""

    types: tuple[str, ...]  # from "bool", "int", "float", "str", "list", "dict", "any"
    optional: bool
    choices: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, raw: str | Mapping[str, Any]) -> KeySpec:
        text = raw if isinstance(raw, str) else str(raw["type"])
        choices = None if isinstance(raw, str) else tuple(raw.get("choices") or ()) or None
        optional = text.endswith("?")
        return cls(tuple(text.rstrip("?").split("|")), optional, choices)

    def describe(self) -> str:
        text = " or ".join(self.types) + (" (or null)" if self.optional else "")
        return text + (f", one of {', '.join(self.choices)}" if self.choices else "")


@dataclass(frozen=True)
class Schema:
    """The whitelist of one trainer × mode."""

    trainer: str
    mode: str
    keys: Mapping[str, KeySpec]

    def suggestion(self, key: str) -> str:
        close = difflib.get_close_matches(key, list(self.keys), n=3, cutoff=0.6)
        return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def schema_path(trainer: str, mode: str) -> Path:
    return resource_dir("recipes") / "schema" / f"{trainer}_{mode}.json"


@lru_cache(maxsize=8)
def load_schema(trainer: str, mode: str) -> Schema:
    data = json.loads(schema_path(trainer, mode).read_text())
    keys = {name: KeySpec.parse(spec) for name, spec in data["keys"].items()}
    return Schema(trainer, mode, keys)


def check_keys(recipe: Mapping[str, Any], schema: Schema, *, origin: str = "recipe") -> None:
    """Raise ``ConfigError`` naming every key the trainer's parser would silently drop."""
    unknown = [k for k in recipe if k not in schema.keys]
    if not unknown:
        return
    parts = [
        f"{k!r} is not a {schema.trainer} {schema.mode.upper()} recipe key.{schema.suggestion(k)}"
        for k in unknown
    ]
    raise ConfigError(f"{origin}: " + " ".join(parts))


def coerce(schema: Schema, key: str, raw: str) -> Any:
    """Turn the text of ``--set key=raw`` into the value the key's type calls for."""
    spec = schema.keys[key]
    value = _coerce(spec, raw.strip())
    if value is _FAIL:
        raise ConfigError(f"--set {key}={raw}: expected {spec.describe()}.")
    if spec.choices and isinstance(value, str) and value not in spec.choices:
        raise ConfigError(f"--set {key}={raw}: expected one of {', '.join(spec.choices)}.")
    return value


_FAIL = object()


def _coerce(spec: KeySpec, text: str) -> Any:
    lowered = text.lower()
    if lowered in _NULL:
        return None  # any key: leave it out of the recipe, i.e. the trainer's default
    if "any" in spec.types:
        return yaml.safe_load(text) if text else ""
    if "bool" in spec.types:
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
    if "int" in spec.types and _INT.match(text):
        return int(text)
    if "float" in spec.types:
        try:
            return float(text)
        except ValueError:
            pass
    if text[:1] in "[{":
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set value {text!r} is not valid YAML: {exc}") from None
        if isinstance(loaded, list) and "list" in spec.types:
            return loaded
        if isinstance(loaded, dict) and "dict" in spec.types:
            return loaded
    if "list" in spec.types and ("," in text or "str" not in spec.types):
        # A bare word for a list key is a one-item list, "a,b" a two-item one.
        return [item.strip() for item in text.split(",") if item.strip()]
    if "str" in spec.types:
        return text
    return _FAIL
