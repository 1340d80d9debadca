"""The credential check's memory of clean lines (credentials.py): a line detect-secrets found clean
is not scanned again, only its digest is kept, and a line it flags is scanned every time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra_templates import credentials


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[str]]:
    """The lines detect-secrets scans, with the cache in ``tmp_path`` (and forgotten before and after)."""
    seen: list[str] = []
    scan = credentials.scan

    def counted(line: str) -> list[str]:
        seen.append(line)
        return scan(line)

    monkeypatch.setattr(credentials, "CACHE_FOLDER", tmp_path)
    monkeypatch.setattr(credentials, "scan", counted)
    credentials.cache_file.cache_clear()
    credentials._clean_lines.cache_clear()
    yield seen
    credentials.cache_file.cache_clear()
    credentials._clean_lines.cache_clear()


def test_a_clean_line_is_scanned_once_and_kept_as_a_digest_only(scans: list[str]) -> None:
    assert credentials.credential_kinds("LOG_LEVEL", "info-xyzzy") == []
    assert scans == ['LOG_LEVEL: "info-xyzzy"']
    path = credentials.cache_file()
    assert path is not None and path.parent == credentials.CACHE_FOLDER
    text = path.read_text(encoding="ascii")
    assert "xyzzy" not in text and "LOG_LEVEL" not in text
    assert len(text.split()) == 1 and len(text.split()[0]) == 64  # one SHA-256, in hex
    credentials._clean_lines.cache_clear()  # as a new process: read back from the file
    assert credentials.credential_kinds("LOG_LEVEL", "info-xyzzy") == []
    assert scans == ['LOG_LEVEL: "info-xyzzy"']  # not scanned again
    assert credentials.credential_kinds("LOG_LEVEL", "debug") == []  # another line: scanned
    assert len(scans) == 2


def test_a_flagged_line_is_never_remembered(scans: list[str]) -> None:
    for _ in range(2):
        assert credentials.credential_kinds("SMTP_PASSWORD", "hunter2xyzzy") == ["Secret Keyword"]
    assert len(scans) == 2
    path = credentials.cache_file()
    assert path is not None and not path.exists()


def test_an_unwritable_cache_only_costs_a_scan(scans: list[str], tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(credentials, "CACHE_FOLDER", blocker / "cache")
    credentials.cache_file.cache_clear()
    assert credentials.credential_kinds("LOG_LEVEL", "info") == []
    assert credentials.credential_kinds("LOG_LEVEL", "info") == []  # remembered in the process
    assert len(scans) == 1
