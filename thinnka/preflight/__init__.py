"""The checks and choices made before any money is spent.

Shared by the gate and estimate handlers and by ``thinnka plan``: the
handlers persist what these functions return (as JSON in ``runs.plan``), so
later steps and ``resume`` never need to ask the Hub again.

- ``gate``: the model is readable, the token may write the target;
- ``choice``: memory per GPU and what to rent, from Runpod's catalog;
- ``run_checks``: ``run``'s refusals before its row exists (exit 2, nothing created);
- ``plan``: ``thinnka plan``'s whole answer and its JSON.
"""

from __future__ import annotations

# GateFacts moved to thinnka.planning.facts (planner and remote both need it); re-exported here.
from thinnka.planning.facts import GateFacts
from thinnka.preflight.choice import (
    KEPT_CHOICE_S,
    Choice,
    choose_candidates,
    choose_gpus,
    cluster_api,
    kept_candidates,
    kept_choice_json,
    memory_estimate,
    offer_json,
    training_plan,
)
from thinnka.preflight.gate import check_gate, default_hub_model_id
from thinnka.preflight.plan import Plan, checkpoints_json, evaluation_json, make_plan, volume_json
from thinnka.preflight.run_checks import (
    Checked,
    RunChecks,
    begin_run_checks,
    check_run_credentials,
    refuse_impossible_choices,
)

__all__ = [
    "KEPT_CHOICE_S",
    "Checked",
    "Choice",
    "GateFacts",
    "Plan",
    "RunChecks",
    "begin_run_checks",
    "check_gate",
    "check_run_credentials",
    "checkpoints_json",
    "choose_candidates",
    "choose_gpus",
    "cluster_api",
    "default_hub_model_id",
    "evaluation_json",
    "kept_candidates",
    "kept_choice_json",
    "make_plan",
    "memory_estimate",
    "offer_json",
    "refuse_impossible_choices",
    "training_plan",
    "volume_json",
]
