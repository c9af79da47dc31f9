"""`reap` over 1,000 stray pods on REST v2 stays within the rate limit (goal: no 429 at all).

The emulated account holds 1,000 pods of this installation whose runs are unknown; `reap`
(the real function, real REST client) terminates each (DELETE, then a confirming GET). The
emulator enforces a quota per fixed window and sends RateLimit headers; the client's pacer
must read them and spread its requests. The window is scaled down (REQUESTS_PER_WINDOW per
WINDOW_S) so the bench takes seconds; the same pacing holds at Runpod's live quotas, and the
report gives the time the same reap needs at 60/min (the spec's example) and 176/min (seen
live).
Run: python bench/reap_rate_limit.py [pods]
"""

from __future__ import annotations

import math
import sys
import time

from _common import emulated_world

PODS = 1000
REQUESTS_PER_WINDOW = 250
WINDOW_S = 2.0


def main() -> None:
    from thinnka.operations import open_session
    from thinnka.recovery import reap
    from thinnka.settings import load_settings

    pods = int(sys.argv[1]) if len(sys.argv) > 1 else PODS
    with emulated_world() as emulated:
        fake, state = emulated.runpod, emulated.root / "state"
        settings = load_settings(
            environ={"THINNKA_STATE_DIR": str(state), "THINNKA_RUNPOD_API": "rest",
                     **fake.client_env()},
            cwd=emulated.root,
        )  # fmt: skip
        session = open_session(settings)
        owner = session.store.installation_id()
        for number in range(pods):
            run_id = f"r-{number:06d}"
            fake.add_foreign_pod(
                f"thinnka-lost-1x-{run_id}", env={"THINNKA_OWNER": owner, "THINNKA_RUN_ID": run_id}
            )
        fake.add_foreign_pod("my-jupyter")  # never touched
        fake.set_rate_limit(("window", REQUESTS_PER_WINDOW, WINDOW_S))
        started = time.perf_counter()
        report = reap(session)
        elapsed = time.perf_counter() - started
        requests = [r for r in fake.requests() if r.surface == "v2"]
        limited = sum(r.status == 429 for r in requests)
        left = [p.name for p in fake.pods()]
        pacer = session.get_services().runpod.pacer
    assert len(report.reaped) == pods and not report.errors, report.errors[:3]
    assert left == ["my-jupyter"], left[:5]
    # Fixed windows: n requests need at least ceil(n / quota) - 1 full windows.
    quota_s = (math.ceil(len(requests) / REQUESTS_PER_WINDOW) - 1) * WINDOW_S
    print(
        f"reap of {pods} pods: {len(requests)} v2 requests in {elapsed:.1f} s "
        f"(quota {REQUESTS_PER_WINDOW}/{WINDOW_S:g} s: at least {quota_s:.1f} s), "
        f"paced {pacer.waited_s:.1f} s, 429 answers: {limited} "
        f"(goal 0: {'met' if limited == 0 else 'MISSED'}); "
        f"at 60/min this reap takes {len(requests) / 60:.0f} min, at 176/min "
        f"{len(requests) / 176:.0f} min",
        flush=True,
    )


if __name__ == "__main__":
    main()
