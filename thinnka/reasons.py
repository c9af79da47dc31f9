"""Why something failed: one enum of reason codes, each with a retry class.

A failed run stores one of the *failure* codes (``Reason.failure`` of the
error that ended it) in ``runs.error_reason``; ``ls``/``show`` print it and
scripts may branch on it. Errors may carry a more specific code (``gated``,
``no_gpu_fits``, ...); each maps to the failure code it belongs to.

Retry classes say what a person (or ``recover``) can expect:

- ``retryable``: the same command again may well succeed (capacity, a lost pod).
- ``user_action``: change something first (options, credentials, limits).
- ``not_retryable``: running it again the same way fails the same way, or the
  stop was deliberate (cancelled); read the log.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FAILURES", "STEP_TIMEOUTS", "Reason", "RetryClass"]


class RetryClass(StrEnum):
    retryable = "retryable"
    user_action = "user_action"
    not_retryable = "not_retryable"


class Reason(StrEnum):
    # The codes a failed run is stored with.
    precheck = "precheck"  # a check before any money was spent (model, token, fit)
    auth = "auth"  # Runpod or the Hub refused the credentials
    no_capacity = "no_capacity"  # no candidate GPU type had stock
    ssh_timeout = "ssh_timeout"  # the pod never answered on SSH
    setup_failed = "setup_failed"  # installing the trainer on the pod failed
    training_failed = "training_failed"  # the trainer exited non-zero
    push_failed = "push_failed"  # training ended but the Hub shows no final push of this run
    max_duration = "max_duration"  # --max-hours reached
    max_cost = "max_cost"  # the cost limit reached
    cancelled = "cancelled"  # thinnka cancel, Ctrl-C, SIGTERM or SIGHUP
    pod_lost = "pod_lost"  # the pod vanished or stopped under the run
    internal = "internal"  # a bug in thinnka, or an error nothing more specific names
    invalid_config = "invalid_config"  # refused input (exit 2, nothing created)

    # More specific codes errors carry today; each belongs to one failure code above.
    gated = "gated"
    model_not_found = "model_not_found"
    no_write_access = "no_write_access"
    repo_busy = "repo_busy"  # another live run pushes to the same repo
    no_gpu_fits = "no_gpu_fits"
    unknown_model_size = "unknown_model_size"
    host_key_changed = "host_key_changed"
    pod_gone = "pod_gone"
    push_missing = "push_missing"
    merge_failed = "merge_failed"
    interrupted = "interrupted"
    process_died = "process_died"  # the process driving the run died; recover stopped it
    terminate = "terminate"  # a pod would not go away (cleanup retries it)
    timeout = "timeout"  # a step ran past its deadline
    remote = "remote"  # a remote service answered with an unexpected error
    transient = "transient"  # 429/5xx/network trouble that outlasted the retries
    not_found = "not_found"
    conflict = "conflict"  # another process moved the run (not a run failure)
    lease_held = "lease_held"
    run_not_found = "run_not_found"
    database = "database"  # the database could not be written (disk full, locked, gone)

    @property
    def failure(self) -> Reason:
        """The code a run that failed for this reason is stored with."""
        return _FAILURE.get(self, self)

    @property
    def retry(self) -> RetryClass:
        return _RETRY.get(self) or _RETRY[self.failure]


FAILURES = (
    Reason.precheck, Reason.auth, Reason.no_capacity, Reason.ssh_timeout, Reason.setup_failed,
    Reason.training_failed, Reason.push_failed, Reason.max_duration, Reason.max_cost,
    Reason.cancelled, Reason.pod_lost, Reason.internal, Reason.invalid_config,
)  # fmt: skip

_FAILURE: dict[Reason, Reason] = {
    Reason.gated: Reason.precheck,
    Reason.model_not_found: Reason.precheck,
    Reason.no_write_access: Reason.precheck,
    Reason.repo_busy: Reason.precheck,
    Reason.no_gpu_fits: Reason.precheck,
    Reason.unknown_model_size: Reason.precheck,
    Reason.host_key_changed: Reason.ssh_timeout,
    Reason.pod_gone: Reason.pod_lost,
    Reason.not_found: Reason.pod_lost,
    Reason.push_missing: Reason.push_failed,
    Reason.merge_failed: Reason.training_failed,
    Reason.interrupted: Reason.cancelled,
    Reason.process_died: Reason.cancelled,
    Reason.terminate: Reason.internal,
    Reason.timeout: Reason.internal,
    Reason.remote: Reason.internal,
    Reason.transient: Reason.internal,
    Reason.conflict: Reason.internal,
    Reason.lease_held: Reason.internal,
    Reason.run_not_found: Reason.invalid_config,
    Reason.database: Reason.internal,
}

_RETRY: dict[Reason, RetryClass] = {
    Reason.precheck: RetryClass.user_action,
    Reason.auth: RetryClass.user_action,
    Reason.no_capacity: RetryClass.retryable,
    Reason.ssh_timeout: RetryClass.retryable,
    Reason.setup_failed: RetryClass.not_retryable,
    Reason.training_failed: RetryClass.not_retryable,
    Reason.push_failed: RetryClass.not_retryable,
    Reason.max_duration: RetryClass.user_action,
    Reason.max_cost: RetryClass.user_action,
    Reason.cancelled: RetryClass.not_retryable,
    Reason.pod_lost: RetryClass.retryable,
    Reason.internal: RetryClass.not_retryable,
    Reason.invalid_config: RetryClass.user_action,
    # Specific codes whose retry class differs from their failure code's:
    Reason.host_key_changed: RetryClass.user_action,  # a different machine answered
    Reason.terminate: RetryClass.retryable,
    Reason.transient: RetryClass.retryable,
    Reason.conflict: RetryClass.retryable,
    Reason.lease_held: RetryClass.retryable,
    Reason.database: RetryClass.retryable,  # once there is space again, or the lock is gone
}

# A step that ran past its deadline fails with the code of what that step waits for.
STEP_TIMEOUTS: dict[str, Reason] = {
    "connect": Reason.ssh_timeout,
    "install": Reason.setup_failed,
    "train": Reason.training_failed,
    "push": Reason.max_duration,
}
