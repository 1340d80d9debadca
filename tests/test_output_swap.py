"""output/ is replaced all or nothing: a build that fails at any layer, or while writing, leaves it
byte-identical (issue 16); a complete build swaps it whole."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Generated, generate_main
from test_generate import snapshot

import generate as cli
from infra_templates import render
from templates import LAYERS, PROJECT_LAYERS


def _stat_snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes and modification time of every file, and the folder list: 'byte-identical' and not rewritten."""
    found: dict[str, tuple[bytes, int]] = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        found[key] = (path.read_bytes(), path.stat().st_mtime_ns) if path.is_file() else (b"<dir>", 0)
    return found


@pytest.fixture
def output(tmp_path: Path, generated: Generated) -> Path:
    folder = tmp_path / "output"
    shutil.copytree(generated.output, folder)
    (folder / "notes.txt").write_text("mine")  # not the tool's: a full build keeps it
    return folder


@pytest.fixture(scope="module")
def untouched(
    tmp_path_factory: pytest.TempPathFactory, generated: Generated
) -> tuple[Path, dict[str, tuple[bytes, int]]]:
    """One output copy, and its snapshot, for the tests of builds that fail before writing: each
    asserts the copy is as the snapshot says after its build, so a build that wrote anything fails
    there (and the copy no longer being as recorded, every later one: the first failure names it)."""
    folder = tmp_path_factory.mktemp("untouched") / "output"
    shutil.copytree(generated.output, folder)
    (folder / "notes.txt").write_text("mine")
    return folder, _stat_snapshot(folder)


def _boom(*_: Any, **__: Any) -> Any:
    raise RuntimeError("injected failure")


EVERY_LAYER = [spec.name for spec in LAYERS]


@pytest.mark.parametrize(
    # the last layer (edge-alarms: every environment has it) alone for one environment, then another
    ("layer", "only"),
    [*((name, None) for name in EVERY_LAYER), (EVERY_LAYER[-1], "prod"), (EVERY_LAYER[-1], "dev")],
)
def test_a_layer_that_fails_leaves_output_byte_identical(
    untouched: tuple[Path, dict[str, tuple[bytes, int]]], monkeypatch: pytest.MonkeyPatch, layer: str, only: str | None
) -> None:
    output, before = untouched
    broken = tuple(dataclasses.replace(s, build=_boom) if s.name == layer else s for s in LAYERS)
    monkeypatch.setattr(cli, "LAYERS", broken)
    with pytest.raises(RuntimeError, match="injected failure"):
        generate_main("--quiet", "--output", str(output), *(["--env", only] if only else []))
    assert _stat_snapshot(output) == before
    assert [p.name for p in output.parent.iterdir()] == ["output"]  # no staging folder left behind


@pytest.mark.parametrize("layer", sorted({spec.name for spec in PROJECT_LAYERS}))
def test_a_project_layer_that_fails_leaves_output_byte_identical(
    untouched: tuple[Path, dict[str, tuple[bytes, int]]], monkeypatch: pytest.MonkeyPatch, layer: str
) -> None:
    output, before = untouched
    broken = tuple(dataclasses.replace(s, build=_boom) if s.name == layer else s for s in PROJECT_LAYERS)
    monkeypatch.setattr(cli, "PROJECT_LAYERS", broken)
    with pytest.raises(RuntimeError, match="injected failure"):
        generate_main("--quiet", "--output", str(output))
    assert _stat_snapshot(output) == before


def test_the_release_files_failing_last_leave_output_byte_identical(
    untouched: tuple[Path, dict[str, tuple[bytes, int]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    output, before = untouched
    monkeypatch.setattr(cli, "delivery_files", _boom)
    with pytest.raises(RuntimeError):
        generate_main("--quiet", "--output", str(output))
    assert _stat_snapshot(output) == before
    assert [p.name for p in output.parent.iterdir()] == ["output"]


@pytest.mark.parametrize("prune", [True, False])
def test_a_write_that_fails_midway_leaves_output_byte_identical(
    output: Path, monkeypatch: pytest.MonkeyPatch, prune: bool
) -> None:
    before = _stat_snapshot(output)
    written: list[Path] = []
    real = render.write_tree

    def fail_third(files: Any, staging: Path, previous: Path | None = None) -> None:
        written.append(staging)
        if len(written) == 3:
            raise OSError(28, "No space left on device")
        real(files, staging, previous)

    monkeypatch.setattr(render, "write_tree", fail_third)
    folders = {name: {"manifest.json": "{}", "a.yaml": name} for name in ("dev", "staging", "prod", "dr")}
    with pytest.raises(OSError, match="No space"):
        render.replace_folders(output, folders, prune=prune)
    assert len(written) == 3
    assert _stat_snapshot(output) == before
    assert [p.name for p in output.parent.iterdir()] == ["output"]


def test_a_swap_that_fails_puts_back_the_folders_already_swapped(output: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = _stat_snapshot(output)
    real = render._swap_in
    calls: list[Path] = []

    def fail_second(new: Path, target: Path, aside: Path) -> None:
        calls.append(target)
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        real(new, target, aside)

    monkeypatch.setattr(render, "_swap_in", fail_second)
    with pytest.raises(OSError):
        render.replace_folders(output, {"dev": {"x": "1"}, "prod": {"x": "2"}})
    monkeypatch.setattr(render, "_swap_in", real)
    assert {k: v[0] for k, v in _stat_snapshot(output).items()} == {k: v[0] for k, v in before.items()}


def test_a_full_build_swaps_output_whole_keeping_what_is_not_generated(output: Path) -> None:
    inode = os.stat(output).st_ino
    kept = sorted(p.name for p in output.iterdir() if not (p / "manifest.json").is_file() and p.name != "dev")
    render.replace_folders(output, {"dev": {"manifest.json": "{}"}, "empty": {}}, prune=True)
    assert sorted(p.name for p in output.iterdir()) == sorted(["dev", "empty", *kept])
    assert "notes.txt" in kept and "prod" not in kept  # generated folders not built again are retired
    assert (output / "notes.txt").read_text() == "mine"
    assert os.stat(output).st_ino != inode  # a new folder took output's place, the old one was not emptied
    assert [p.name for p in output.parent.iterdir()] == ["output"]


def test_no_services_in_defaults_is_refused_or_built_and_never_breaks_output(output: Path, settings_dir: Path) -> None:
    text = (settings_dir / "defaults.yaml").read_text()
    start = text.index("\nservices:\n")
    end = text.index("\nedge:\n")
    (settings_dir / "defaults.yaml").write_text(text[:start] + "\nservices: {}" + text[end:])
    before = snapshot(output)
    status, _, err = generate_main("--quiet", "--settings", str(settings_dir), "--output", str(output))
    assert "Traceback" not in err
    if status == 0:  # built: whole, with a delivery folder of what the environments still name
        assert (output / "delivery").is_dir()
        assert (output / "notes.txt").read_text() == "mine"
    else:
        assert status == 2, err
        assert snapshot(output) == before


@pytest.mark.parametrize("prune", [True, False])
def test_without_an_atomic_exchange_two_renames_do_the_same(
    output: Path, monkeypatch: pytest.MonkeyPatch, prune: bool
) -> None:
    """Where renameat2(RENAME_EXCHANGE) is missing (other systems, some filesystems) the swap falls
    back to two renames with the same result."""
    monkeypatch.setattr(render, "_exchange", lambda a, b: False)
    render.replace_folders(output, {"dev": {"manifest.json": "{}", "a.sh": "echo"}}, prune=prune)
    assert snapshot(output / "dev") == {"a.sh": b"echo", "manifest.json": b"{}"}
    assert os.access(output / "dev" / "a.sh", os.X_OK)
    assert (output / "prod").is_dir() != prune  # a full build retires the folders it did not build
    assert [p.name for p in output.parent.iterdir()] == ["output"]


def test_the_exchange_is_atomic_on_this_system(tmp_path: Path) -> None:
    """On Linux the full build's swap is one renameat2(RENAME_EXCHANGE) (man 2 rename); elsewhere
    the exchange says it cannot, and two renames do it."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x").write_text("a")
    (tmp_path / "b" / "y").write_text("b")
    exchanged = render._exchange(tmp_path / "a", tmp_path / "b")
    assert exchanged == sys.platform.startswith("linux")
    if exchanged:
        assert (tmp_path / "b" / "x").read_text() == "a" and (tmp_path / "a" / "y").read_text() == "b"


def test_no_services_anywhere_builds_whole_with_an_empty_delivery_folder(output: Path, settings_dir: Path) -> None:
    """The old swap crashed on the empty delivery folder after five folders were replaced (issue 16)."""
    for path in settings_dir.glob("*.yaml"):
        data = yaml.safe_load(path.read_text())
        if "services" in data:
            data["services"] = {}
        path.write_text(yaml.safe_dump(data))
    status, _, err = generate_main("--quiet", "--settings", str(settings_dir), "--output", str(output))
    assert status == 0, err
    assert list((output / "delivery").iterdir()) == []
    assert not list((output / "prod").glob("svc-*"))
    assert (output / "notes.txt").read_text() == "mine"
