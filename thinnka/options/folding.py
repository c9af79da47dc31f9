"""``--set`` merged into the options it belongs to, before ``options.validate`` checks them.

A recipe key that an option owns becomes that option; a key with no safe ``--set`` form is
refused pointing at the option; what stays a recipe override is checked by its kind (pod
path, URL, Hub id), and every value must be one printable line without YAML aliases.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from thinnka.errors import ConfigError
from thinnka.options.run_options import OVERRIDE_KEY
from thinnka.values import check_hub_id, check_line, check_pod_path, check_web_url

if TYPE_CHECKING:
    from thinnka.options.run_options import RunOptions

__all__ = ["FOLDED_KEYS", "REFUSED_KEYS", "fold_overrides"]


# Recipe keys that an option owns: a --set of one becomes that option, so it passes the
# option's rules and preflight (the Hub write check for hub_model_id, the W&B key for
# report_to, the id rules for the model) instead of slipping into the recipe unchecked.
FOLDED_KEYS: dict[str, tuple[str, str]] = {
    "model_name_or_path": ("repo_id", "--repo-id"),
    "hub_model_id": ("hub_model_id", "--hub-model-id"),
    "output_dir": ("output_dir", "--output-dir"),
    "dataset_name": ("dataset_name", "--dataset-name"),
    "dataset_prompt_column": ("dataset_prompt_column", "--dataset-prompt-column"),
    "report_to": ("report_to", "--report-to"),
    "chat_template": ("chat_template", "--chat-template"),
}
# Keys with no safe --set form: a secret in the recipe, or a target no preflight checks.
REFUSED_KEYS: dict[str, str] = {
    "hub_token": "thinnka gives the pod HF_TOKEN itself (a 0600 file, never a recipe)",
    "push_to_hub_token": "thinnka gives the pod HF_TOKEN itself (a 0600 file, never a recipe)",
    "push_to_hub_model_id": "use --hub-model-id (its write access is checked before a pod)",
    "push_to_hub_organization": "use --hub-model-id (its write access is checked before a pod)",
    "log_completions_hub_repo": "it pushes to a repo whose write access nothing checks",
    "chat_template_path": "use --chat-template (a file is read and checked here)",
    "deepspeed": "use --deepspeed-stage (thinnka writes the DeepSpeed config)",
}
# Paths the pod writes or reads: inside the run's folder (relative), never '..'.
_PATH_KEYS = frozenset({"logging_dir", "resume_from_checkpoint"})
_URL_KEYS = frozenset({"vllm_server_base_url"})
_HUB_ID_KEYS = frozenset({"reward_model_name_or_path"})
_NULL = frozenset({"null", "~"})


def fold_overrides(options: RunOptions) -> RunOptions:
    """Fold owned ``--set`` keys into their options; check what stays a recipe override."""
    changes: dict[str, Any] = {}
    kept: list[tuple[str, str]] = []
    for key, raw in options.overrides:
        if not OVERRIDE_KEY.fullmatch(key):
            raise ConfigError(f"--set key {key!r} is not a recipe key.")
        _check_override_value(key, raw)
        if key in REFUSED_KEYS:
            raise ConfigError(f"--set {key} is not allowed: {REFUSED_KEYS[key]}.")
        if key == "report_to":
            changes["report_to"], several = _trackers(raw)
            if several:  # the recipe lists them all; the option carries the W&B preflight
                kept.append((key, raw))
            continue
        if key in FOLDED_KEYS:
            name, flag = FOLDED_KEYS[key]
            changes[name] = _folded_value(key, raw, name, flag)
            continue
        if raw.lower() not in _NULL:
            if key in _PATH_KEYS:
                check_pod_path(f"--set {key}", raw, absolute_ok=False)
            elif key in _URL_KEYS:
                check_web_url(f"--set {key}", raw)
            elif key in _HUB_ID_KEYS:
                check_hub_id(f"--set {key}", raw)
        kept.append((key, raw))
    if not changes:
        return options
    return dataclasses.replace(options, overrides=tuple(kept), **changes)


_NON_FINITE = frozenset({".nan", ".inf", "+.inf", "-.inf"})  # YAML's spellings


def _check_override_value(key: str, raw: str) -> None:
    check_line(f"--set {key}", raw, limit=8192)
    try:
        number = float(raw)
    except ValueError:
        number = 0.0
    if not math.isfinite(number) or raw.lower() in _NON_FINITE:
        raise ConfigError(f"--set {key}={raw}: numbers must be finite.")
    if "*" in raw or "&" in raw:
        # A YAML alias can expand a few bytes into megabytes (billion laughs): refuse them.
        import yaml

        try:
            tokens = list(yaml.scan(raw))
        except yaml.YAMLError:
            return  # not YAML; the recipe's own coercion reports it
        if any(isinstance(t, yaml.AliasToken | yaml.AnchorToken) for t in tokens):
            raise ConfigError(f"--set {key}: YAML anchors and aliases (&name, *name) are refused.")


def _folded_value(key: str, raw: str, name: str, flag: str) -> Any:
    if raw.lower() in _NULL:
        if name in ("repo_id", "dataset_name", "dataset_prompt_column"):
            raise ConfigError(f"--set {key} cannot be null; {flag} sets it.")
        return None
    return raw


_TRACKERS = ("none", "wandb", "tensorboard")


def _trackers(raw: str) -> tuple[str, bool]:
    """(--report-to value, whether the recipe needs the list) for ``--set report_to=``."""
    import yaml

    if raw.lower() in _NULL:
        return "none", False
    try:
        loaded: Any = yaml.safe_load(raw) if raw[:1] == "[" else raw.split(",")
    except yaml.YAMLError:
        loaded = None
    items = [str(i).strip() for i in loaded] if isinstance(loaded, list) else [None]
    if not items or any(item not in _TRACKERS for item in items):
        raise ConfigError(
            f"--set report_to={raw}: use --report-to, one of {', '.join(_TRACKERS)} "
            "(a list of wandb and tensorboard is accepted too)."
        )
    if len(set(items)) == 1:
        return str(items[0]), False
    if "none" in items:
        raise ConfigError(f"--set report_to={raw}: 'none' cannot be listed with a tracker.")
    return ("wandb" if "wandb" in items else "tensorboard"), True
