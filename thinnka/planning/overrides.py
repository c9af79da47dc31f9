"""The ``--set`` overrides of a run, typed once against the trainer's key whitelist.

``typed_overrides`` resolves every ``--set KEY=VALUE`` against the trainer's key whitelist
(``recipes/schema``), types the value, and lets the last setting win. Everything downstream
(the ``TrainingPlan``, the recipe) reads the merged ``Overrides``, never the raw pairs; a
check of the merged options + overrides belongs at the end of ``typed_overrides``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from thinnka.planning.stacks import stack_for

if TYPE_CHECKING:
    from thinnka.options import RunOptions

__all__ = ["Overrides", "check_overrides", "typed_overrides"]


@dataclass(frozen=True)
class Overrides:
    """The ``--set`` pairs merged: schema key → typed value (None: leave the key out)."""

    values: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # spelling translations ("--set torch_dtype is spelled dtype")

    def get(self, key: str, default: Any = None) -> Any:
        """The value the user set, or ``default`` when unset or set to null."""
        value = self.values.get(key)
        return default if value is None else value

    def __contains__(self, key: str) -> bool:
        return key in self.values


def typed_overrides(options: RunOptions) -> Overrides:
    """Every ``--set`` resolved against the trainer's whitelist and typed; the last one wins.

    The one place where options and overrides meet: unknown keys and values of the wrong
    type raise ``ConfigError`` here.
    """
    from thinnka.planning.schema import ALIASES, check_keys, coerce, load_schema

    schema = load_schema(stack_for(options.trainer).template, options.mode)
    aliases = ALIASES.get(schema.trainer, {})
    values: dict[str, Any] = {}
    notes: list[str] = []
    unknown: dict[str, str] = {}
    for given, raw in options.overrides:
        key = aliases.get(given, given)
        if key not in schema.keys:
            unknown[given] = raw
            continue
        values.pop(key, None)  # re-inserted: the order of the last setting is kept
        values[key] = coerce(schema, key, raw)
        if given != key:
            notes.append(
                f"--set {given} is spelled {key} for the {schema.trainer} trainer; set {key}."
            )
    if unknown:
        check_keys(unknown, schema, origin="--set")
    return Overrides(values, tuple(dict.fromkeys(notes)))


def check_overrides(options: RunOptions) -> None:
    """Refuse unknown --set keys (with a "did you mean") and values of the wrong type."""
    typed_overrides(options)
