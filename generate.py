#!/usr/bin/env python3
"""infra-templates: environment files in, CloudFormation templates out, checked before upload.

    python generate.py [--env NAME ...] [--output DIR] [--quiet]   write output/<env>/ (default)
    python generate.py check [--output DIR]                          run the gate on written output

Exit status: 0 done, 1 the gate found problems, 2 the settings were refused (nothing written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from infra_templates import checks  # noqa: E402
from infra_templates.config import SettingsError, available_environments, load_environment, project_of  # noqa: E402
from infra_templates.pipeline import (  # noqa: E402
    PROJECT_FOLDER,
    Stack,
    build_project_stacks,
    build_stacks,
    environment_files,
    project_files,
)
from infra_templates.render import replace_folders  # noqa: E402
from templates import LAYERS, PROJECT_LAYERS  # noqa: E402

EXIT_SETTINGS = 2


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="generate.py",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Settings live in environments/: defaults.yaml plus one <env>.yaml per environment.",
    )
    commands = parser.add_subparsers(dest="command", metavar="{build,check}")
    build = commands.add_parser("build", help="write the templates (the default command)")
    check = commands.add_parser("check", help="run the gate (cfn-lint, checkov, wiring, limits) on output")
    for sub in (parser, build):
        sub.add_argument(
            "--env",
            action="append",
            metavar="NAME",
            help="build only this environment (repeat for several); default: every file in environments/",
        )
        sub.add_argument("--quiet", action="store_true", help="print nothing but errors")
        sub.add_argument(
            "--settings",
            type=Path,
            default=ROOT / "environments",
            metavar="DIR",
            help="folder of defaults.yaml and <env>.yaml files (default: environments/)",
        )
    for sub in (parser, build, check):
        sub.add_argument(
            "--output", type=Path, default=ROOT / "output", metavar="DIR", help="output folder (default: output/)"
        )
    args = parser.parse_args(argv)
    if args.command is None:
        args.command = "build"
    return args


def run_build(names: list[str] | None, settings: Path, output: Path, quiet: bool) -> int:
    names_given = bool(names)
    names = names or available_environments(settings)
    problems: list[str] = []
    environments = []
    for name in names:
        try:
            environments.append(load_environment(name, settings))
        except SettingsError as error:
            problems.extend(p for p in error.problems if p not in problems)  # defaults.yaml once
    if problems:
        return _refuse(problems)
    try:
        project = project_of(environments, settings)
    except SettingsError as error:
        return _refuse(error.problems)
    project_stacks = build_project_stacks(project, PROJECT_LAYERS)
    folders: dict[str, dict[str, str]] = {}
    if not names_given:  # project stacks depend on every environment: written by full builds only
        folders[PROJECT_FOLDER] = project_files(project, project_stacks)
        _summary(quiet, "project", project_stacks)
    for env in environments:
        stacks = build_stacks(env, LAYERS)
        folders[env.name] = environment_files(env, stacks, project_stacks)
        _summary(quiet, env.name, stacks)
    replace_folders(output, folders, prune=not names_given)
    if not quiet:
        print(f"wrote {', '.join(f'{output.name}/{name}/' for name in folders)}")
    return 0


def _refuse(problems: list[str]) -> int:
    print("Refused: nothing was written. Fix these settings:", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return EXIT_SETTINGS


def _summary(quiet: bool, label: str, stacks: list[Stack]) -> None:
    if quiet:
        return
    for stack in stacks:
        print(
            f"{label:<8} {stack.name:<28} {stack.region:<13} {stack.resource_count:>4} resources "
            f"{len(stack.yaml.encode()):>7,} bytes (YAML)"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "check":
        return checks.run_gate(args.output)
    return run_build(args.env, args.settings, args.output, args.quiet)


if __name__ == "__main__":
    sys.exit(main())
