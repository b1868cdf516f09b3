"""A worker's static group identity and the lock on its data directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from closedloop.streams.kafka.membership import (
    DataDirInUse,
    group_instance_id,
    lock_data_dir,
)


def test_a_data_directory_keeps_its_group_instance_id_across_restarts(tmp_path: Path) -> None:
    first = group_instance_id("city-app", str(tmp_path))
    assert first.startswith("city-app-")
    assert group_instance_id("city-app", str(tmp_path)) == first


def test_two_data_directories_never_share_a_group_instance_id(tmp_path: Path) -> None:
    assert group_instance_id("city-app", str(tmp_path / "a")) != group_instance_id(
        "city-app", str(tmp_path / "b"))


def test_a_damaged_or_foreign_id_file_gets_a_new_id(tmp_path: Path) -> None:
    (tmp_path / "group-instance-id").write_bytes(b"\xff\xfe")
    made = group_instance_id("city-app", str(tmp_path))
    assert made.startswith("city-app-")
    assert group_instance_id("other-app", str(tmp_path)).startswith("other-app-")


def test_a_second_worker_on_a_data_directory_in_use_is_refused(tmp_path: Path) -> None:
    held = lock_data_dir(str(tmp_path))
    try:
        with pytest.raises(DataDirInUse, match="in use by another worker"):
            lock_data_dir(str(tmp_path))
    finally:
        held.close()
    lock_data_dir(str(tmp_path)).close()  # free again once its holder is gone
