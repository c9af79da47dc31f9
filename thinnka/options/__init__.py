"""The options of a run: what the user asked for, its rules, its ``--set`` folding, its limits.

``RunOptions`` is the one definition of every run option and its default; the CLI derives
its flags' defaults from it.
"""

from __future__ import annotations

from thinnka.options.run_options import (
    ALLOWED_GPU_COUNTS,
    DEFAULT_IMAGE,
    SINK_FLAGS,
    THINNKA_IMAGE,
    GpuStrategy,
    RunOptions,
    Trainer,
    parse_custom_dependencies,
    parse_overrides,
)
from thinnka.options.validation import validate, validate_for_settings, validate_sink_urls

__all__ = [
    "ALLOWED_GPU_COUNTS",
    "DEFAULT_IMAGE",
    "SINK_FLAGS",
    "THINNKA_IMAGE",
    "GpuStrategy",
    "RunOptions",
    "Trainer",
    "parse_custom_dependencies",
    "parse_overrides",
    "validate",
    "validate_for_settings",
    "validate_sink_urls",
]
