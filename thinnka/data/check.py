"""The local data sets of a run's options, read and checked before anything exists."""

from __future__ import annotations

from typing import TYPE_CHECKING

from thinnka.data.local import LocalData, read_local_data
from thinnka.planning.datarules import rule_for

if TYPE_CHECKING:
    from thinnka.options import RunOptions

__all__ = ["check_local_data", "recorded_data"]


def check_local_data(options: RunOptions, *, tokens: bool = False) -> tuple[LocalData, ...]:
    """Each local data set (train, eval) checked against the run's column rules;
    ``ConfigError`` naming file, row and column. ``tokens``: measure with the model's
    tokenizer when this machine has it (``thinnka plan``), else characters."""
    given = [(role, path) for role, path in (
        ("train", options.dataset_path), ("eval", options.eval_dataset_path)
    ) if path]  # fmt: skip
    if not given:
        return ()
    rule = rule_for(options)
    measure = None
    if tokens:
        from thinnka.data.tokens import local_tokenizer

        measure = local_tokenizer(options.repo_id)
    return tuple(
        read_local_data(path, rule, role=role, measure=measure, unit="tokens")
        for role, path in given
    )


def recorded_data(plan: dict[str, object] | None) -> tuple[LocalData, ...]:
    """The data sets recorded with a run (``runs.plan["data"]``)."""
    found = (plan or {}).get("data") or []
    assert isinstance(found, list)
    return tuple(LocalData.from_json(item) for item in found)
