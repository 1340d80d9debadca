"""Whatever an environment file holds, the run refuses it by name or builds (issue 16): no traceback,
exit 2, the file (and line) named; editor and OS leftovers are not read; a 20 MB file is refused at once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import SETTINGS, generate_main, refusal

from infra_templates.config import available_environments, load_settings

BILLION_LAUGHS = "x0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
    f"x{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
)


def _append(path: Path, data: bytes) -> None:
    path.write_bytes(path.read_bytes() + data)


@pytest.mark.parametrize(
    ("case", "tail", "expected"),
    [
        ("latin-1", b"\n# caf\xe9\n", "staging.yaml: line {n}: byte 0xe9 is not UTF-8"),
        ("nul", b"\n# \x00\n", "staging.yaml: line {n}: contains a NUL byte"),
        ("python tag", b"\nx: !!python/object/apply:os.system [echo]\n", "staging.yaml: is not valid YAML (line {n}, "),
        ("any tag", b"\nx: !secret a\n", "could not determine a constructor for the tag '!secret'"),
        ("duplicate", b"\nproduction: true\nproduction: true\n", "key 'production' is given twice"),
        ("merge", b"\nx:\n  <<: 5\n", "staging.yaml: is not valid YAML (line"),
        ("unhashable key", b"\n? [a, b]\n: 1\n", "staging.yaml: is not valid YAML"),
        ("tab", b"\nx:\n\t- a\n", "staging.yaml: is not valid YAML (line"),
        ("billion laughs", ("\n" + BILLION_LAUGHS).encode(), "aliases (*name) expand to more than 100,000 values"),
        ("deep", b"\nx: " + b"[" * 50_000 + b"]" * 50_000 + b"\n", "staging.yaml: is nested too deeply"),
    ],
)
def test_a_file_that_cannot_be_read_as_settings_is_refused_by_name(
    settings_dir: Path, case: str, tail: bytes, expected: str
) -> None:
    path = settings_dir / "staging.yaml"
    line = path.read_bytes().count(b"\n") + 2
    _append(path, tail)
    assert expected.format(n=line) in refusal(settings_dir), case


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_a_utf16_or_utf32_file_is_refused_with_its_encoding(settings_dir: Path, encoding: str) -> None:
    path = settings_dir / "staging.yaml"
    path.write_bytes(path.read_text().encode(encoding))
    message = refusal(settings_dir)
    assert "staging.yaml:" in message
    assert ("UTF-16" in message or "UTF-32" in message) if encoding != "utf-16-be" else "NUL byte" in message


def test_a_utf8_byte_order_mark_is_read(settings_dir: Path) -> None:
    path = settings_dir / "staging.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert [e.name for e in load_settings(settings_dir)[2]] == available_environments(SETTINGS)


def test_a_20_mb_file_is_refused_in_under_two_seconds(settings_dir: Path) -> None:
    path = settings_dir / "staging.yaml"
    _append(path, b"\nx: [" + b"1, " * 7_000_000 + b"1]\n")
    assert path.stat().st_size > 20_000_000
    start = time.perf_counter()
    message = refusal(settings_dir)
    assert time.perf_counter() - start < 2
    assert "staging.yaml: is larger than 1024 KiB" in message


def test_editor_and_os_leftovers_are_not_read(settings_dir: Path) -> None:
    (settings_dir / "._prod.yaml").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X\xff\xfe")
    (settings_dir / ".#dev.yaml").symlink_to("user@host.12345:1700000000")  # Emacs's lock: a dangling link
    (settings_dir / "dev.yaml~").write_bytes(b"\xff not yaml")
    (settings_dir / ".dev.yaml.swp").write_bytes(b"b0VIM 9.0\x00\xff")
    (settings_dir / "prod.yaml.bak").write_text("{")
    assert available_environments(settings_dir) == available_environments(SETTINGS)
    assert [e.name for e in load_settings(settings_dir)[2]] == available_environments(SETTINGS)


def test_files_that_look_like_environments_are_refused_not_skipped(settings_dir: Path) -> None:
    (settings_dir / "qa.yml").write_text("region: eu-west-1\n")
    (settings_dir / "Qa.yaml").write_text("region: eu-west-1\n")
    status, _, err = generate_main("--settings", str(settings_dir), "--output", str(settings_dir / "out"))
    assert status == 2
    assert "qa.yml: is not read: environment files end in .yaml; rename it to qa.yaml" in err
    assert "Qa.yaml: name = 'Qa': string should match pattern" in err
    assert "Traceback" not in err
    assert not (settings_dir / "out").exists()


@pytest.mark.parametrize(
    "text",
    [
        b"\xff\xfe\x00\x00",
        b"- a\n- b\n",
        b"just text\n",
        b"{1: a}\n",
        b"services: null\n",
        b"services: [web, api]\n",
        b"network: {cidr: 99}\n",
        b"tags: {Team: [a]}\n",
        b"x: 99999-12-31\ny: !!binary '%%%'\n",
        b"database: {capacity: {mode: serverless, min_acu: .nan, max_acu: .inf}}\n",
    ],
)
def test_no_file_ends_in_a_traceback(settings_dir: Path, text: bytes) -> None:
    _append(settings_dir / "staging.yaml", b"\n")
    (settings_dir / "staging.yaml").write_bytes(text)
    status, _, err = generate_main("--quiet", "--settings", str(settings_dir), "--output", str(settings_dir / "out"))
    assert status == 2
    assert err.startswith("Refused: nothing was written.") and "Traceback" not in err
    assert "staging.yaml" in err
    assert not (settings_dir / "out").exists()


@pytest.mark.parametrize("name", ["../environments/prod", "._prod", "Prod", "prod.yaml"])
def test_an_env_option_that_is_not_an_environment_name_reads_no_file(name: str, settings_dir: Path) -> None:
    status, _, err = generate_main("--env", name, "--settings", str(settings_dir), "--output", str(settings_dir / "o"))
    assert status == 2
    assert f"--env {name!r}: is not an environment name" in err
    assert "did you mean 'prod'?" in err or "/" in name
    assert not (settings_dir / "o").exists()
