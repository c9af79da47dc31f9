"""``run``'s checks before it creates a row: every refusal of bad input (exit 2, nothing
created) happens here, before any pod exists."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from thinnka.errors import ConfigError, RefusedChoice, ThinnkaError
from thinnka.options import RunOptions, validate_for_settings
from thinnka.planning.facts import GateFacts
from thinnka.preflight.choice import Choice, choose_candidates, memory_estimate
from thinnka.preflight.gate import check_gate

if TYPE_CHECKING:
    from thinnka.data import LocalData
    from thinnka.services import Services
    from thinnka.settings import Settings

__all__ = [
    "Checked",
    "RunChecks",
    "begin_run_checks",
    "check_run_credentials",
    "refuse_impossible_choices",
]


@dataclass(frozen=True)
class Checked:
    """What ``run`` asked before it created the row: the gate's facts, and the GPU choice made
    from the catalog (kept for the estimate step, ``kept_choice_json``)."""

    gate: GateFacts
    choice: Choice
    asked_at: dt.datetime  # when the catalog was read


def refuse_impossible_choices(services: Services, options: RunOptions) -> Checked | None:
    """The gate and the GPU choice, asked before ``run`` creates a row.

    A refusal of the user's own choice (a namespace the token cannot write, a
    ``--max-price`` below every GPU that fits, a ``--gpu-type`` matching none)
    raises ``RefusedChoice``, and input the training plan cannot work with (a
    ``--chat-template`` that is no template, a 4-bit base under ZeRO-3) raises
    ``ConfigError``: exit 2 with nothing created, as ``plan`` refuses them. Every other failure
    (a gated model, the Hub or Runpod unreachable) returns ``None`` and is met
    again by the handlers, so the failed run is recorded with its reason. The
    gate's facts and the choice are returned for the gate and estimate steps to keep: they
    need not ask twice.
    """
    try:
        # The catalog does not depend on the gate's answers: Runpod is asked while the Hub is.
        runpod = services.runpod
        asked_at = dt.datetime.now(dt.UTC)
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog")
        asked_offers = (
            None  # a cluster's catalog is asked by choose_candidates
            if options.multi_node
            else pool.submit(runpod.gpu_offers, options.gpu_count, options.cloud_type)
        )
        pool.shutdown(wait=False)  # a refusal need not wait for it (each request is bounded)
        gate = check_gate(services, options, require_write=True)
        need = memory_estimate(options, gate)
        offers = None if asked_offers is None else asked_offers.result()
        choice = choose_candidates(services, options, gate, need, offers)
    except (RefusedChoice, ConfigError):
        raise  # the user's own choice or input cannot work: exit 2, nothing created
    except ThinnkaError:
        return None
    return Checked(gate, choice, asked_at)


def check_run_credentials(settings: Settings, options: RunOptions) -> None:
    """The original's checks 8–10, before a row exists: keys and SSH key material."""
    if not settings.runpod_api_key:
        raise ConfigError("RUNPOD_API_KEY is required.")
    if not settings.hf_token:
        raise ConfigError("HF_TOKEN or HUGGINGFACE_HUB_TOKEN is required.")
    if options.report_to == "wandb" and not settings.wandb_api_key:
        raise ConfigError("--report-to wandb needs WANDB_API_KEY in the environment or .env.")
    from thinnka.pod.keys import resolve_key_pair

    resolve_key_pair(options, settings)


@dataclass(frozen=True)
class RunChecks:
    """A run's options, validated, and ``refuse_impossible_choices`` under way for them."""

    options: RunOptions  # --set merged, every rule checked
    refusal: Future[Checked | None]
    data: tuple[LocalData, ...] = ()  # local data sets, read and checked

    def checked(self) -> Checked | None:
        """Waits for the Hub and Runpod reads; raises what they refused (exit 2)."""
        return self.refusal.result()


def begin_run_checks(services: Services, options: RunOptions) -> RunChecks:
    """Check what needs no service now (invalid options: exit 2, nothing created), then
    start the Hub and Runpod reads in a thread and return at once.

    ``run`` calls this before it opens the database, so those round trips overlap the
    imports and the migration check instead of following them. The reads only read;
    ``services`` needs no store for them.
    """
    options = validate_for_settings(options, services.settings)  # --set merged, then checked
    check_run_credentials(services.settings, options)
    from thinnka.planning.overrides import check_overrides

    check_overrides(options)
    from thinnka.data.check import check_local_data

    data = check_local_data(options)  # read and checked here: exit 2, no row, no pod
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="preflight")
    refusal = pool.submit(refuse_impossible_choices, services, options)
    pool.shutdown(wait=False)
    return RunChecks(options, refusal, data)
