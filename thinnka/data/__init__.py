"""Local data sets: reading and checking them here, uploading them to the pod.

I/O beside the pure rules of ``thinnka.planning.datarules``.
"""

from __future__ import annotations

from thinnka.data.local import DataFile, LengthStats, LocalData, read_local_data

__all__ = ["DataFile", "LengthStats", "LocalData", "read_local_data"]
