"""estimated → provisioned: a pod exists and its id is recorded.

Every pod bounds itself from its first second (``thinnka.pod.bootguard``): its start
command runs a guard that terminates it when nobody connects, or no job starts, in time.

Idempotent by construction: the pod's name and its ``THINNKA_RUN_ID`` env are
written down before the create call, and before every create the account is
searched for a pod of this run, which is adopted instead of creating a
second one (a create that timed out on our side may have succeeded).
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import replace
from typing import ClassVar

from thinnka.clients.runpod import Pod, PodSpec
from thinnka.errors import CapacityError, TransientError
from thinnka.handlers.volume import volume_attempts
from thinnka.options.limits import max_hours_for
from thinnka.planning.facts import GateFacts, PlanCandidate
from thinnka.pod.bootguard import START_COMMAND, boot_guard_env
from thinnka.pod.keys import resolve_key_pair
from thinnka.pod.paths import run_dir_for
from thinnka.step import StepContext, StepResult
from thinnka.store import RunRecord
from thinnka.store.models import utcnow

__all__ = ["ProvisionHandler", "find_run_pods", "pod_name_for"]

_CREATE_ATTEMPTS = 3


def pod_name_for(run: RunRecord) -> str:
    """``thinnka-<model>-<N>x-<run-id>`` (or ``<--pod-name>-<run-id>``); unique per run."""
    options = run.options
    if options.pod_name:
        base = options.pod_name
    else:
        model = re.sub(r"[^a-z0-9]+", "-", options.repo_id.split("/")[-1].lower()).strip("-")
        base = f"thinnka-{model[:32]}-{options.gpu_count}x"
    return f"{base}-{run.id}"


def _type_id_of(pod: Pod, run: RunRecord) -> str | None:
    """The GPU type id of an adopted pod (``runs.gpu_type`` always holds the id).

    The API names it; failing that, the plan's candidate with the pod's display name.
    """
    if pod.gpu_type_id:
        return pod.gpu_type_id
    for candidate in (run.plan or {}).get("candidates", []):
        if pod.gpu_display_name and candidate.get("display_name") == pod.gpu_display_name:
            return str(candidate["id"])
    return None


def _attempts(candidates: list[PlanCandidate], cloud_type: str) -> list[tuple[PlanCandidate, str]]:
    """(candidate, cloud) in the order to try: each GPU type on each of its clouds.

    REST v2 has no "any cloud" (an omitted cloud is SECURE), so the catalog read lists, per
    type, the clouds with stock (SECURE first: its hosts have public IPs, which SSH needs).
    Plans stored before the per-cloud catalog carry no clouds: the option itself is used.
    """
    return [(c, cloud) for c in candidates for cloud in (c.clouds or (cloud_type,))]


def _remote_root(ctx: StepContext) -> str:
    """The pod's /workspace (THINNKA_REMOTE_ROOT in the emulated world)."""
    return (ctx.settings.extra.get("THINNKA_REMOTE_ROOT") or "/workspace").rstrip("/") or "/"


def find_run_pods(pods: list[Pod], run_id: str, owner: str) -> list[Pod]:
    """This run's pods: the env tags say so (names alone are not unique on Runpod)."""
    return [
        pod
        for pod in pods
        if pod.env.get("THINNKA_RUN_ID") == run_id and pod.env.get("THINNKA_OWNER") == owner
    ]


class ProvisionHandler:
    trigger: ClassVar[str] = "provision"

    def timeout_s(self, run: RunRecord) -> float:
        return 600.0

    def run(self, ctx: StepContext) -> StepResult:
        run = ctx.run
        owner = ctx.services.owner
        name = run.pod_name or pod_name_for(run)
        if run.pod_name is None:
            run = ctx.save(pod_name=name)  # the intent, before any create call

        if run.options.multi_node:
            return self._cluster(ctx, name, owner)
        adopted = self._adopt(ctx, owner)
        if adopted is not None:
            return self._result(ctx, adopted, _type_id_of(adopted, run), adopted=True)

        plan = run.plan or {}
        gate = GateFacts.from_json(plan["gate"])
        env = self._pod_env(ctx, owner)
        last_error: Exception | None = None
        candidates = [PlanCandidate.from_json(c) for c in plan.get("candidates", [])]
        attempts = _attempts(candidates, run.options.cloud_type)
        volume = None
        if run.options.network_volume:
            volume, attempts = volume_attempts(ctx, candidates, gate.model_facts().num_parameters)
        for candidate, cloud in attempts:
            ctx.check_cancelled()
            where = f"{candidate.display_name} ({cloud})"
            ctx.output.event("gpu_try", f"Trying {where}.")
            guard = boot_guard_env(
                run.options,
                run_dir_for(ctx.settings, run.id),
                run.pod_started_at or utcnow(),  # a restart's pod keeps the run's bound
                candidate.price_per_hour,
            )
            spec = self._spec(ctx, name, candidate.id, cloud, gate, {**env, **guard})
            if volume is not None:  # mounted at the remote root, in its data center
                spec = replace(
                    spec,
                    network_volume_id=volume.id,
                    data_center_ids=(volume.data_center,),
                    volume_mount_path=_remote_root(ctx),
                )
            try:
                pod = self._create(ctx, spec, owner)
            except CapacityError as exc:
                last_error = exc
                ctx.note("gpu_fail", f"{candidate.id} ({cloud}): {exc.message}")
                ctx.output.event("gpu_fail", f"{where}: no capacity.")
                continue
            return self._result(ctx, pod, candidate.id, adopted=False)
        raise CapacityError(
            f"Unable to create a pod on any candidate GPU. Last error: {last_error}"
            if last_error
            else "No GPU candidates to try."
        )

    # -------------------------------------------------------------- pieces
    def _cluster(self, ctx: StepContext, name: str, owner: str) -> StepResult:
        """--nodes: an Instant Cluster of identical nodes, each bounded by the boot guard."""
        from thinnka.clients.runpod.clusters import ClusterSpec
        from thinnka.handlers.cluster import create_cluster

        run = ctx.run
        plan = run.plan or {}
        gate = GateFacts.from_json(plan["gate"])
        env = self._pod_env(ctx, owner)
        candidates = [PlanCandidate.from_json(c) for c in plan.get("candidates", [])]

        def spec_for(candidate: PlanCandidate) -> ClusterSpec:
            price = candidate.price_per_hour
            guard = boot_guard_env(
                run.options,
                run_dir_for(ctx.settings, run.id),
                utcnow(),
                None if price is None else price * run.options.nodes,
            )
            pod = self._spec(ctx, name, candidate.id, "SECURE", gate, {**env, **guard})
            return ClusterSpec(
                name=name,
                image=pod.image,
                gpu_type_id=candidate.id,
                gpu_count_per_pod=run.options.gpu_count,
                pod_count=run.options.nodes,
                container_disk_gb=pod.container_disk_gb,
                volume_gb=pod.volume_gb,
                env=pod.env,
                start_command=pod.start_command,
            )

        gpu_type = create_cluster(ctx, name, candidates, spec_for)
        cluster = ctx.run.cluster_id
        return StepResult(message=f"Instant Cluster {cluster} ({run.options.nodes} × {gpu_type}).")

    def _adopt(self, ctx: StepContext, owner: str) -> Pod | None:
        mine = find_run_pods(ctx.services.runpod.list_pods(), ctx.run.id, owner)
        for extra in mine[1:]:  # never keep two pods for one run
            ctx.services.runpod.terminate_pod(extra.id)
            ctx.note("pod_terminated", f"Terminated duplicate pod {extra.id}.")
        return mine[0] if mine else None

    def _create(self, ctx: StepContext, spec: PodSpec, owner: str) -> Pod:
        delay = 1.0
        for attempt in range(1, _CREATE_ATTEMPTS + 1):
            try:
                return ctx.services.runpod.create_pod(spec)
            except TransientError:
                # The create may have landed even though we saw an error.
                adopted = self._adopt(ctx, owner)
                if adopted is not None:
                    ctx.note("pod_adopted", f"Create answer lost; adopted pod {adopted.id} by tag.")
                    return adopted
                if attempt == _CREATE_ATTEMPTS or ctx.remaining() < delay:
                    raise
                time.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _pod_env(self, ctx: StepContext, owner: str) -> dict[str, str]:
        keys = resolve_key_pair(ctx.run.options, ctx.settings)
        root = _remote_root(ctx)
        env = {
            "THINNKA_RUN_ID": ctx.run.id,
            "THINNKA_OWNER": owner,
            "PUBLIC_KEY": keys.public_key,
            "SSH_PUBLIC_KEY": keys.public_key,
            "HF_HOME": f"{root}/.cache/huggingface",
            # The run's own bound, visible through the API: `reap` of a database that does
            # not know this run (a copy shares the owner id) waits until it has passed.
            "THINNKA_MAX_HOURS": f"{max_hours_for(ctx.run.options)[0]:g}",
        }
        if ctx.settings.hf_endpoint:
            env["HF_ENDPOINT"] = ctx.settings.hf_endpoint
        return env  # never the HF token: it travels over SFTP

    def _spec(
        self,
        ctx: StepContext,
        name: str,
        gpu_type_id: str,
        cloud: str,
        gate: GateFacts,
        env: dict[str, str],
    ) -> PodSpec:
        options = ctx.run.options
        size_gb = gate.model_facts().num_parameters * 2 / 1e9  # bf16 weights on disk
        volume = options.volume_gb or max(40, math.ceil(size_gb * 2))
        disk = options.container_disk_gb or max(40, math.ceil(size_gb * 1.5))
        return PodSpec(
            name=name,
            image=options.effective_image,
            gpu_type_id=gpu_type_id,
            gpu_count=options.gpu_count,
            cloud_type=cloud,
            volume_gb=volume,
            container_disk_gb=disk,
            min_vcpu=options.min_vcpu,
            min_memory_gb=options.min_memory,
            env=env,
            start_command=START_COMMAND,  # the boot guard, then the image's start script
        )

    def _result(
        self, ctx: StepContext, pod: Pod, gpu_type: str | None, *, adopted: bool
    ) -> StepResult:
        remote = ctx.run.remote
        if remote.restarts.count and remote.restarts.pod_at is None:
            # A restart's new pod: its SSH wait and its cost count from now, the run's bounds
            # still from the first pod (pod_started_at).
            remote = replace(remote, restarts=replace(remote.restarts, pod_at=utcnow()))
        ctx.save(
            pod_id=pod.id,
            gpu_type=gpu_type,
            gpu_count=pod.gpu_count or ctx.run.options.gpu_count,
            cost_per_hr=pod.cost_per_hr,
            pod_started_at=ctx.run.pod_started_at or utcnow(),
            remote=remote,
        )
        verb = "Adopted" if adopted else "Created"
        ctx.output.event("pod_created", f"{verb} pod {pod.id} with {gpu_type}.")
        return StepResult(message=f"{verb} pod {pod.id} ({gpu_type}).")
