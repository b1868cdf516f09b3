"""A worker's identity in the consumer group, kept in its data directory.

With a ``group_instance_id`` the worker is a *static* member of its group (KIP-345): a worker
restarted on the same data directory, killed or stopped, rejoins under the same identity
and the broker hands it the partitions it had, without a rebalance and without waiting for
the dead member's session to expire; nobody else's partitions move meanwhile. The id is made
once per data directory, so two workers on two directories never share one; a lock on the
directory keeps a second worker from starting on a directory in use (the broker would fence
one of two members sharing an id, and they would share snapshots too).

A static member does not leave the group when it stops: its partitions wait for it for the
session timeout. A worker removed for good hands its partitions over once that expires.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from pathlib import Path
from typing import IO

from closedloop.streams.kafka.settings import KafkaSetupError

__all__ = ["DataDirInUse", "group_instance_id", "lock_data_dir"]

ID_FILE = "group-instance-id"
LOCK_FILE = "worker.lock"


class DataDirInUse(KafkaSetupError):
    """Another worker runs on this data directory."""


def group_instance_id(app_id: str, data_dir: str) -> str:
    """This data directory's static member id in ``app_id``'s group, made on first use.

    Written to a temporary file and renamed, so a worker killed while making it leaves
    either no id or a whole one, never half of one."""
    path = Path(data_dir) / ID_FILE
    try:
        known = path.read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        known = ""
    if known.startswith(f"{app_id}-") and len(known) > len(app_id) + 1:
        return known
    made = f"{app_id}-{uuid.uuid4().hex}"
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{ID_FILE}.{os.getpid()}")
    temporary.write_text(made + "\n", "utf-8")
    os.replace(temporary, path)
    return made


def lock_data_dir(data_dir: str) -> IO[bytes]:
    """Hold ``data_dir`` for this process (until the returned file is closed, or the
    process ends however it ends: the kernel releases the lock of a killed process).
    Raises :class:`DataDirInUse` when another process holds it."""
    path = Path(data_dir) / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = path.open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise DataDirInUse(
            f"the data directory {data_dir} is in use by another worker: give each worker "
            "a directory of its own (--data-dir)") from None
    return handle
