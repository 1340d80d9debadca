"""generate.py as users run it: exit codes, untouched output on refusal, one environment, --quiet.

What only a process shows (its exit status, what reaches its stdout and stderr, no traceback) is
run as a process (``generate``); what a build writes, in this process (``generate_main``: the same
``main()`` without an interpreter's start-up and imports, 0.3 s of CPU a run)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import BUILT, ENVIRONMENTS, Generated, edit_yaml, generate, generate_main

from infra_templates import diagram
from infra_templates.handover import FILES as HANDOVER_FILES

# The build draws what it wrote, as `make templates` does: DOT, and SVG and PNG where dot is installed.
DIAGRAMS = diagram.FILES if shutil.which("dot") else ("architecture.dot",)

__all__ = ["generate", "snapshot"]  # generate (from conftest: builds from the fixtures) is imported from here too


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_writes_every_environment_with_a_summary_line_per_stack(generated: Generated) -> None:
    output, stdout = generated.output, generated.stdout  # the session's one full run of generate.py
    for env in ENVIRONMENTS:
        layers = BUILT.stacks[env]
        assert sorted(p.name for p in (output / env).iterdir()) == sorted(
            [f"{layer}.{ext}" for layer in layers for ext in ("yaml", "json")]
            + ["manifest.json", *HANDOVER_FILES, *DIAGRAMS]
            + (["RUNBOOK.md"] if BUILT.environments[env].dr else [])
        )
        for layer in layers:
            assert f"shop-{env}-{layer}" in stdout
    assert sorted(p.name for p in (output / "project").iterdir()) == sorted(
        [f"{layer}.{ext}" for layer in BUILT.project_stacks for ext in ("yaml", "json")]
        + ["manifest.json", *HANDOVER_FILES, *DIAGRAMS]
    )
    assert sorted(p.name for p in (output / "delivery").iterdir()) == sorted(BUILT.project.services)
    assert "resources" in stdout and "bytes" in stdout


def test_quiet_prints_nothing(tmp_path: Path) -> None:
    result = generate("--quiet", "--output", str(tmp_path))
    assert result.returncode == 0
    assert result.stdout == result.stderr == ""


def test_env_builds_only_that_environment_and_keeps_the_others(tmp_path: Path, generated: Generated) -> None:
    output = tmp_path / "output"
    shutil.copytree(generated.output, output)  # a full build's output
    before = snapshot(output / "prod")
    (output / "prod" / "marker").write_text("kept")
    status, stdout, _ = generate_main("--env", "dev", "--output", str(output))
    assert status == 0
    assert "shop-dev-network" in stdout and "shop-prod" not in stdout
    assert (output / "prod" / "marker").read_text() == "kept"
    assert {k: v for k, v in snapshot(output / "prod").items() if k != "marker"} == before


def test_bad_settings_exit_2_name_file_and_field_and_leave_output_untouched(
    tmp_path: Path, settings_dir, generated: Generated
) -> None:
    output = tmp_path / "out"
    shutil.copytree(generated.output, output)  # a full build's output
    before = snapshot(output)
    edit_yaml(settings_dir / "prod.yaml", network__subnets__data=["10.30.64.0/24", "10.30.65.0/24", "10.99.0.0/24"])
    result = generate("--settings", str(settings_dir), "--output", str(output))
    assert result.returncode == 2
    assert "prod.yaml: network.subnets.data[2] = '10.99.0.0/24': is outside the VPC's CIDR block" in result.stderr
    assert "nothing was written" in result.stderr
    assert snapshot(output) == before
    assert not any(p.name.startswith(".staging") for p in output.iterdir())


def test_malformed_yaml_exits_2_without_creating_output(tmp_path: Path, settings_dir) -> None:
    (settings_dir / "dev.yaml").write_text("network: [\n")
    output = tmp_path / "never"
    result = generate("--settings", str(settings_dir), "--output", str(output))
    assert result.returncode == 2
    assert "dev.yaml: is not valid YAML (line" in result.stderr
    assert not output.exists()


def test_missing_environment_exits_2(tmp_path: Path) -> None:
    result = generate("--env", "qa", "--output", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "environments/qa.yaml: no such environment file; environments here: dev, dr, prod, staging" in result.stderr


def test_full_build_retires_output_of_a_deleted_environment(tmp_path: Path, settings_dir, generated: Generated) -> None:
    output = tmp_path / "out"
    shutil.copytree(generated.output, output)  # a full build of the same settings (settings_dir is their copy)
    (settings_dir / "staging.yaml").unlink()
    edit_yaml(settings_dir / "defaults.yaml", delivery__stages=["dev", "prod", "dr"])  # releases skip it too
    (output / "notes").mkdir()
    # The diagrams as DOT only: the folders a build keeps do not depend on Graphviz's pictures.
    status, _, err = generate_main(
        "--quiet", "--diagrams", "dot", "--settings", str(settings_dir), "--output", str(output)
    )
    assert status == 0, err
    assert sorted(p.name for p in output.iterdir()) == ["delivery", "dev", "dr", "notes", "prod", "project"]
    assert err == ""  # nothing recorded as deployed of it: said on stdout only, and --quiet says nothing


def test_a_retired_folder_whose_stacks_are_recorded_as_deployed_is_said_even_when_quiet(
    tmp_path: Path, settings_dir: Path, generated: Generated
) -> None:
    """From a new user's trial: deleting an environment's file silently removed its deploy, status
    and destroy scripts while its stacks still ran. The build still removes the folder, and says so,
    naming the record and the way to delete the stacks; without a record, a line on stdout."""
    output, deployed = tmp_path / "out", tmp_path / "deployed"
    shutil.copytree(generated.output, output)
    (settings_dir / "staging.yaml").unlink()
    edit_yaml(settings_dir / "defaults.yaml", delivery__stages=["dev", "prod", "dr"])
    base = ["--diagrams", "none", "--settings", str(settings_dir), "--output", str(output)]
    status, out, err = generate_main(*base)
    assert status == 0 and f"removed {output / 'staging'}/: {settings_dir / 'staging.yaml'} is gone\n" in out
    assert err == ""
    shutil.rmtree(output)
    shutil.copytree(generated.output, output)
    for stack in ("shop-staging-keys", "shop-staging-network"):
        (deployed / "staging" / "eu-west-1").mkdir(parents=True, exist_ok=True)
        (deployed / "staging" / "eu-west-1" / f"{stack}.json").write_text("{}")
    status, _, err = generate_main("--quiet", "--deployed", str(deployed), *base)
    assert status == 0 and not (output / "staging").exists()
    assert f"{deployed / 'staging'}/ records 2 stacks of it as deployed: to delete them, restore the file" in err
    assert "`make destroy ENV=staging`" in err


def test_help_explains_every_option() -> None:
    result = generate("--help")
    assert result.returncode == 0
    for option in ("--env", "--quiet", "--settings", "--output", "check"):
        assert option in result.stdout


def test_the_build_draws_what_make_templates_draws(generated: Generated, tmp_path: Path) -> None:
    output = tmp_path / "output"
    shutil.copytree(generated.output, output)
    before = snapshot(output)
    assert generate_main("diagram", "--output", str(output))[0] == 0  # `make templates` used to run this after
    assert snapshot(output) == before  # nothing new, nothing different: the build drew the same files
    assert all((output / env / "architecture.dot").is_file() for env in ENVIRONMENTS)


def test_diagrams_none_and_dot(tmp_path: Path) -> None:
    assert generate_main("--quiet", "--diagrams", "none", "--env", "dev", "--output", str(tmp_path / "a"))[0] == 0
    assert not list((tmp_path / "a").rglob("architecture.*"))
    status, _, err = generate_main("--quiet", "--diagrams", "dot", "--env", "dev", "--output", str(tmp_path / "b"))
    assert status == 0  # the templates are written; the diagram needs the project folder too
    assert "diagrams: " in err and "dev not drawn: " in err
    # it says why and what to do, as the gate does for the same folder (not a bare file-not-found)
    assert f"{tmp_path / 'b' / 'project'}/ was never built there" in err
    assert "build without --env once, as `make templates` does" in err and "Errno" not in err


def test_a_python_without_the_tools_gets_the_command_to_use(tmp_path: Path) -> None:
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from conftest import ROOT, SETTINGS  # noqa: PLC0415

    # -S: no site-packages, as a system Python without the pinned tools
    result = subprocess.run(
        [sys.executable, "-S", str(ROOT / "generate.py"), "--settings", str(SETTINGS), "--output", str(tmp_path)],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "lacks the module" in result.stderr and ".venv/bin/python generate.py" in result.stderr


def test_folder_options_name_what_is_wrong(generated: Generated, tmp_path: Path) -> None:
    """From a new user's trial: --env takes a folder's name (not a path), `defaults` and a folder
    without a manifest are said to be what they are, an empty path (an unset variable) is refused by
    argparse (exit 2), and the diagram command says why an output without its project folder cannot
    be drawn."""
    output = generated.output
    for command in ("cost", "diagram", "check"):
        status, _, err = generate_main(command, "--output", str(output), "--env", "../output/dev")
        assert status == 2 and "--env ../output/dev: is a path; --env takes the name of a folder of the output" in err
        assert "did you mean 'dev'?" in err, command
        status, _, err = generate_main(command, "--output", str(output), "--env", "defaults")
        assert status == 2 and "--env defaults: names defaults.yaml, the settings every environment shares" in err
        status, _, err = generate_main(command, "--output", str(output), "--env", "delivery")
        assert status == 2 and "delivery/ has no manifest.json: not an environment's nor the project's folder" in err
    for argv in (["diff", "--against", ""], ["--deployed", " ", "diff"], ["--output", "", "cost"]):
        status, _, err = generate_main(*argv)
        assert status == 2 and "an empty path (an unset variable?)" in err, argv
    new = tmp_path / "new"
    assert generate_main("--quiet", "--diagrams", "none", "--env", "dev", "--output", str(new))[0] == 0
    status, _, err = generate_main("diagram", "--output", str(new), "--env", "dev", "--dot-only")
    assert status == 1 and f"{new / 'project'}/ was never built there" in err and "Errno" not in err


def test_a_build_refuses_an_output_that_is_a_file_or_holds_the_settings(
    tmp_path: Path, settings_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a new user's trial: ``--output`` naming a file replaced the file by the output folder
    (its content lost, exit 0), and with ``--env`` ended in a traceback. A file, the settings folder
    and a folder holding it are refused, exit 2, before anything is read or written."""
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    for argv in ([], ["--env", "dev"]):
        status, _, err = generate_main("--quiet", "--settings", str(settings_dir), "--output", str(notes), *argv)
        assert status == 2 and f"--output {notes}: is not a folder" in err and "Traceback" not in err
        assert notes.read_text() == "my notes\n"
    before = snapshot(settings_dir.parent)
    for output, what in (
        (settings_dir, "is the settings folder"),
        (settings_dir.parent, f"holds the settings folder ({settings_dir}/)"),
    ):
        status, _, err = generate_main("--quiet", "--settings", str(settings_dir), "--output", str(output))
        assert status == 2 and f"--output {output}: {what}: give a folder of its own" in err
    assert snapshot(settings_dir.parent) == before
    # the working folder or one holding it (a traceback: a folder in use cannot be renamed) and a
    # symbolic link (a build replaced the link by a folder, the target kept its stale files)
    inside = tmp_path / "out" / "notes"
    inside.mkdir(parents=True)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "out")
    for output, what in (
        (".", "is the working folder"),
        ("..", "holds the working folder"),
        (str(link), "is a symbolic link"),
    ):
        monkeypatch.chdir(inside)
        status, _, err = generate_main("--quiet", "--settings", str(settings_dir), "--output", output)
        assert status == 2 and f"--output {output}: {what}" in err and "Traceback" not in err, err
    assert link.is_symlink() and sorted(p.name for p in (tmp_path / "out").iterdir()) == ["notes"]


@pytest.mark.parametrize("command", ["check", "cost", "diagram"])
def test_an_output_folder_with_nothing_built_is_refused_with_exit_2(command: str, tmp_path: Path) -> None:
    """From a new user's trial: `check`, `cost` and `diagram` on an --output that is missing, a file
    or a folder of something else exit 2 (a folder option that cannot be used), as an --env naming no
    folder does; they used to exit 1, which in a CI job reads as "the gate found problems"."""
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes").mkdir()
    file = tmp_path / "file.txt"
    file.write_text("x")
    for output, why in (
        (tmp_path / "missing", "no such folder"),
        (file, "is a file, not a folder"),
        (empty, "no manifest.json in any of its folders"),
    ):
        status, out, err = generate_main(command, "--output", str(output))
        assert status == 2, (output, err)
        assert f": {why}: run `make templates` first, or give --output the folder it wrote" in err
        assert "Traceback" not in err and out == ""


def test_the_summary_names_the_folders_as_given(tmp_path: Path) -> None:
    status, out, _ = generate_main("--diagrams", "none", "--env", "dev", "--output", str(tmp_path / "x" / "out"))
    assert status == 0 and f"wrote {tmp_path / 'x' / 'out' / 'dev'}/" in out


@pytest.mark.parametrize(
    ("argv", "unused"),
    [
        (["--settings", "other", "cost"], "--settings"),  # priced output/ without a word
        (["--deployed", "/x", "check"], "--deployed"),
        (["--diagrams", "none", "diagram"], "--diagrams"),
        (["--quiet", "schema", "--check"], "--quiet"),
    ],
)
def test_an_option_before_a_command_that_does_not_use_it_is_refused(argv: list[str], unused: str) -> None:
    import generate as cli  # noqa: PLC0415

    status, out, err = generate_main(*argv)
    assert (status, out) == (2, "")
    assert f"generate.py {argv[-1] if argv[-1] != '--check' else 'schema'}: {unused}: not used by" in err
    assert set(cli.USED_OPTIONS) == {"build", "diff", "check", "diagram", "cost", "schema"}  # every command


def test_an_environment_no_release_reaches_is_noted(tmp_path: Path, settings_dir: Path) -> None:
    """An environment left out of delivery.stages builds, but nothing ever releases to it: the build
    says so (not with --quiet), as the README's "Adding an environment" warns."""
    edit_yaml(settings_dir / "defaults.yaml", delivery__stages=["dev", "prod", "dr"])
    argv = [
        "--diagrams",
        "none",
        "--settings",
        str(settings_dir),
        "--output",
        str(tmp_path / "out"),
        "--env",
        "staging",
    ]
    status, out, err = generate_main(*argv)
    assert status == 0, err
    assert "note: staging is not in delivery.stages (dev, prod, dr): it builds and deploys by hand" in out
    assert "note: dev " not in out
    status, out, _ = generate_main("--quiet", *argv)
    assert status == 0 and out == ""
