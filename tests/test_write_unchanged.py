"""A build links the files the folder it replaces already holds byte for byte (render.write_tree),
and writes every other file anew: the output is the same either way, and once the replaced folder
is gone no file of the new one shares its data with any other path."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import pytest

from infra_templates import render


def _files(folder: Path) -> dict[str, tuple[bytes, int, int]]:
    """Each file's bytes, permission bits and link count."""
    found: dict[str, tuple[bytes, int, int]] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            status = path.stat()
            found[str(path.relative_to(folder))] = (path.read_bytes(), status.st_mode & 0o777, status.st_nlink)
    return found


FILES = {"a.yaml": "a: 1\n", "deploy.sh": "#!/bin/bash\necho hi\n", "sub/b.json": "{}\n", "é.md": "café\n"}


def test_a_second_build_of_the_same_files_links_them_and_leaves_each_with_one_link(tmp_path: Path) -> None:
    output = tmp_path / "output"
    render.replace_folders(output, {"dev": FILES}, prune=True)
    first = _files(output / "dev")
    inodes = {name: (output / "dev" / name).stat().st_ino for name in FILES}
    render.replace_folders(output, {"dev": FILES}, prune=True)
    assert _files(output / "dev") == first
    assert {name: (output / "dev" / name).stat().st_ino for name in FILES} == inodes  # linked, not written
    assert all(links == 1 for _, _, links in first.values())
    assert first["deploy.sh"][1] == 0o755


def test_changed_files_are_written_anew_and_the_old_ones_left_alone(tmp_path: Path) -> None:
    output = tmp_path / "output"
    render.replace_folders(output, {"dev": FILES}, prune=True)
    kept = (output / "dev" / "a.yaml").stat().st_ino
    changed = {**FILES, "a.yaml": "a: 2\n", "sub/b.json": "{}\n\n"}
    render.replace_folders(output, {"dev": changed}, prune=False)
    assert {k: v[0].decode() for k, v in _files(output / "dev").items()} == changed
    assert (output / "dev" / "a.yaml").stat().st_ino != kept


def test_a_file_with_another_link_another_mode_or_through_a_folder_link_is_written_anew(tmp_path: Path) -> None:
    output = tmp_path / "output"
    render.replace_folders(output, {"dev": FILES}, prune=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.link(output / "dev" / "a.yaml", elsewhere / "a.yaml")  # the user's own link to a generated file
    (output / "dev" / "deploy.sh").chmod(0o700)
    (elsewhere / "sub").mkdir()
    (elsewhere / "sub" / "b.json").write_text("{}\n")
    os.chmod(elsewhere / "sub" / "b.json", (output / "dev" / "sub" / "b.json").stat().st_mode & 0o777)
    (output / "dev" / "sub" / "b.json").unlink()
    (output / "dev" / "sub").rmdir()
    (output / "dev" / "sub").symlink_to(elsewhere / "sub")  # a folder that is a link to elsewhere
    render.replace_folders(output, {"dev": FILES}, prune=True)
    after = _files(output / "dev")
    assert {k: v[0].decode() for k, v in after.items()} == FILES
    assert all(links == 1 for _, _, links in after.values())  # none shares its data with elsewhere/
    assert after["deploy.sh"][1] == 0o755
    assert (elsewhere / "a.yaml").stat().st_nlink == 1 and (elsewhere / "sub" / "b.json").stat().st_nlink == 1
    assert not (output / "dev" / "sub").is_symlink()


def _times_and_links(folder: Path) -> dict[str, tuple[int, int]]:
    return {name: ((folder / name).stat().st_mtime_ns, (folder / name).stat().st_nlink) for name in FILES}


def test_a_failed_build_leaves_the_linked_files_as_they_were(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output = tmp_path / "output"
    render.replace_folders(output, {"dev": FILES, "prod": FILES}, prune=True)
    before = _times_and_links(output / "dev")
    real = render.write_tree
    calls: list[Path] = []

    def fail_second(files: Mapping[str, str], staging: Path, previous: Path | None = None) -> None:
        calls.append(staging)
        if len(calls) == 2:  # after dev's files were linked into the staging folder
            raise OSError(28, "No space left on device")
        real(files, staging, previous)

    monkeypatch.setattr(render, "write_tree", fail_second)
    with pytest.raises(OSError, match="No space"):
        render.replace_folders(output, {"dev": FILES, "prod": FILES}, prune=True)
    assert _times_and_links(output / "dev") == before
    assert [p.name for p in tmp_path.iterdir()] == ["output"]
