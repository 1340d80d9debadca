"""settings.services.is_time_zone answers as ``name in zoneinfo.available_timezones()`` does."""

from __future__ import annotations

import os
import zoneinfo

from infra_templates.settings.services import is_time_zone

ODD = [
    "", "/", "UTC/", "./UTC", "UTC/.", "Europe//Paris", "../zoneinfo/UTC", "right/UTC", "posix/UTC",
    "posixrules", "Europe", "Europe/Paris/x", "a\x00b", "utc", "Europe/paris", "Mars/Olympus", "Etc/GMT+5",
]  # fmt: skip


def test_every_path_under_the_time_zone_folders_and_odd_names_as_available_timezones() -> None:
    known = zoneinfo.available_timezones()
    names = set(ODD)
    for root in zoneinfo.TZPATH:
        for folder, folders, files in os.walk(root):  # every file and folder: zones, tables, right/, posix/
            names.update(os.path.relpath(os.path.join(folder, name), root) for name in [*folders, *files])
    assert len(known) > 300  # the system has its time zone data: the comparison below means something
    assert {name for name in names if is_time_zone(name)} == known & names
    assert known <= names
