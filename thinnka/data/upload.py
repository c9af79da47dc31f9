"""A run's local data sets onto its pod: over SFTP, into the run folder, only when needed.

The hash recorded when the run was made (``LocalData``) decides: a file the pod holds
with that hash already (a ``resume`` on the same pod, a setup run again) is left; a
local file whose hash changed since is refused, since the run was checked and planned
on the recorded content. Nothing of the data reaches a command line, a URL or an event:
the file goes over SFTP, and only its pod path and hash are said.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from thinnka.data.local import LocalData, file_sha256
from thinnka.errors import ConfigError
from thinnka.planning.datarules import remote_data_dir

if TYPE_CHECKING:
    from thinnka.clients.ssh import PodShell
    from thinnka.step import StepContext

__all__ = ["upload_data", "upload_run_data"]


def upload_data(shell: PodShell, data: LocalData, run_dir: str) -> tuple[int, int]:
    """Put ``data``'s files into ``run_dir/data/<role>``; (files uploaded, files kept)."""
    folder = remote_data_dir(run_dir, data.role)
    shell.make_dirs(folder)
    uploaded = kept = 0
    for file in data.files:
        target = f"{folder}/{file.remote_name}"
        if shell.sha256_of(target) == file.sha256:
            kept += 1
            continue
        try:
            now = file_sha256(file.local)
        except OSError as exc:
            raise ConfigError(
                f"The run's data file {file.local} cannot be read any more ({exc.strerror})."
            ) from None
        if now != file.sha256:
            raise ConfigError(
                f"The run's data file {file.local} changed since the run was made (sha256 "
                f"{file.sha256[:12]}…, now {now[:12]}…): start a new run for the new data."
            )
        shell.put_file(file.local, target)
        uploaded += 1
    return uploaded, kept


def upload_run_data(ctx: StepContext, shell: PodShell, run_dir: str) -> None:
    """Every local data set recorded with the run, onto its pod; said by path and hash."""
    from thinnka.data.check import recorded_data

    for data in recorded_data(ctx.run.plan):
        uploaded, _ = upload_data(shell, data, run_dir)
        where = remote_data_dir(run_dir, data.role)
        how = "already there" if not uploaded else f"{uploaded} file(s) uploaded"
        ctx.output.event(
            "data_uploaded",
            f"Local {data.role} data ({data.rows:,} rows, sha256 {data.sha256[:12]}…) in "
            f"{where}: {how}.",
        )
