"""The gate: the model is readable with this token, and the token may write the target."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from thinnka.errors import AuthError, PreflightError, RefusedChoice
from thinnka.options import RunOptions
from thinnka.planning.facts import GateFacts

if TYPE_CHECKING:
    from thinnka.clients.hub import HubModel
    from thinnka.services import Services

__all__ = ["check_gate", "default_hub_model_id"]


def default_hub_model_id(user: str, options: RunOptions) -> str:
    """``<user>/<model name>-<grpo|sft>-thinnka``, as the original named it."""
    return f"{user}/{options.repo_id.split('/')[-1]}-{options.mode}-thinnka"


def check_gate(services: Services, options: RunOptions, *, require_write: bool = True) -> GateFacts:
    """Model readable with this token; token may write the target namespace.

    With ``require_write=False`` (``thinnka plan``) what cannot be checked
    without a token becomes a warning instead of an error.
    """
    hub = services.hub
    # Two independent Hub round trips: ask both at once.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="gate") as pool:
        asked_token = pool.submit(hub.whoami)
        model: HubModel = hub.model(options.repo_id)
    warnings: list[str] = []
    user: str | None = None
    try:
        token = asked_token.result()
        user = token.user
    except AuthError as exc:
        if require_write:
            raise PreflightError(
                f"Cannot check write access: {exc.message}", reason="auth"
            ) from exc
        warnings.append("No usable HF token: write access to the target repo is not checked.")
        token = None
    hub_model_id = options.hub_model_id or default_hub_model_id(user or "<you>", options)
    namespace = hub_model_id.split("/")[0]
    if token is not None and not token.may_write(namespace):
        raise RefusedChoice(
            f"The HF token ({token.role}) cannot write to {namespace!r}; "
            f"{hub_model_id} could not be pushed. Use a token with write access.",
            reason="no_write_access",
        )
    if model.gated:
        warnings.append(f"{options.repo_id} is gated ({model.gated}); this token has access.")
    return GateFacts(
        repo_id=options.repo_id,
        hub_model_id=hub_model_id,
        user=user,
        gated=model.gated,
        has_chat_template=model.has_chat_template,
        system_role_supported=model.system_role_supported,
        transformers_version=model.transformers_version,
        model_type=model.model_type,
        files=[(name, size) for name, size in model.files],
        safetensors_total=model.safetensors_total,
        safetensors_parameters=model.safetensors_parameters,
        config=model.config,
        warnings=warnings,
    )
