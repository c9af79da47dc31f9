"""Drives a run through its state machine; the only place transitions fire.

For each step the runner takes the forward edge out of the run's state,
gives its handler a deadline-bound context, and, when the handler succeeds,
fires the trigger on a strict ``transitions`` machine and persists the move
with a guarded write (state + facts + event row in one transaction). A
failing step moves the run to ``failed`` with the error recorded; cleanup then
moves it to ``terminated``. The driving process holds a lease, renewed by a
heartbeat thread, so ``resume`` and ``recover`` never drive a live run twice.

* ``drive``: ``Runner``, the loop, its steps and the failure paths;
* ``failure``: the reason a failing step records, and the crash matrix's kill points;
* ``store_down``: stopping a run when the database itself fails.
"""

from thinnka.lease import make_owner_id
from thinnka.runner.drive import Runner
from thinnka.runner.failure import crash_point, failure_reason

__all__ = ["Runner", "crash_point", "failure_reason", "make_owner_id"]
