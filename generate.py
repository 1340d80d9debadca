#!/usr/bin/env python3
"""infra-templates: environment files in, CloudFormation templates out, checked before upload.

    python generate.py [--env NAME ...] [--output DIR] [--quiet] [--diagrams all|dot|none]
                       [--diagram-detail traffic|all] [--deployed DIR]
                                                                     write output/<env>/ and its diagrams (default)
    python generate.py check [--env NAME ...] [--output DIR]         run the gate on written output
    python generate.py diff [--env NAME ...] [--against DIR]         preview changes against DIR (deployed/)
    python generate.py schema [--check]                              write the environment files' JSON Schema
    python generate.py diagram [--env NAME ...] [--output DIR] [--dot-only] [--diagram-detail traffic|all]
                                                                     draw output/<env>/architecture.*
    python generate.py cost [--env NAME ...] [--output DIR] [--against DIR]    fixed monthly cost of written output

Exit status: 0 done, 1 the gate found problems, 2 the settings were refused (nothing written), a
folder option cannot be used or `check`, `cost` or `diagram` `--env` names a folder that is not
there, 3 (diff only) the built templates differ from those in DIR; diff exits 1 when a change is
one AWS refuses (a "cannot deploy" verdict: a REFUSED: line such as a CODE_DEPLOY service's load
balancers or capacity mix, an export another stack imports changed, a custom-named resource replaced).
schema --check exits 1 when the committed schema is stale.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import os
import sys
from collections.abc import Callable
from pathlib import Path

# pydantic loads its plugins, the first time it builds a model, from the entry points of every
# distribution installed (importlib.metadata reads each one's metadata: some 6 ms of a build's CPU,
# .venv holds 126). The tool uses no pydantic plugin and its pinned requirements
# install none. PYDANTIC_DISABLE_PLUGINS is pydantic's switch for that ("Pydantic Plugins",
# https://docs.pydantic.dev/latest/concepts/plugins/#disabling-plugins: __all__, 1 or true turn
# every plugin off); set before pydantic is imported, and only when the user has not set it.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

if __name__ == "__main__":
    # A run is short and what it builds (settings, templates, their texts) lives to its end: the
    # cyclic garbage collector's passes over those objects cost about a quarter of a build's CPU
    # and freed nothing (the same peak memory with and without them, measured on every shipped
    # environment and on 100 services: README, "Benchmark"). Reference counting still frees
    # everything that is not a cycle. The commands that run other tools (the gate's cfn-lint and
    # checkov, the diagrams, the cost) turn it back on in main().
    gc.disable()


_exit_status: int | None = None  # set when main() has returned: the process then ends without teardown


def _exit_without_teardown() -> None:
    """The last atexit handler (registered before any other, they run last-in first-out): once the
    other handlers have run and stdout and stderr are flushed, end the process with main()'s status
    (``os._exit``) instead of letting the interpreter tear down every module and free every object
    the run made one by one, some 12 ms CPU of a build of every shipped environment (README,
    "Benchmark"), for memory the operating system takes back at once. The same end Instagram
    described for its servers ("Dismissing Python Garbage Collection at Instagram", 2017:
    ``atexit.register(os._exit, 0)``), with the real status. A flush that fails (a closed pipe) or a
    run that did not return (an exception) ends as Python ends it."""
    if _exit_status is None:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(_exit_status)


if __name__ == "__main__":
    atexit.register(_exit_without_teardown)

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

# Before troposphere and pydantic are imported: their imports a build never uses (cfn_flip,
# importlib.metadata) are left undone (infra_templates/deferred_imports.py says how and why).
from infra_templates.deferred_imports import install as defer_unused_imports  # noqa: E402

defer_unused_imports()

try:  # the pinned tools are in .venv/: another Python gets the command to use, not a traceback
    import troposphere  # noqa: F401
    import yaml  # noqa: F401
except ModuleNotFoundError as missing:  # pragma: no cover - exercised by a subprocess test
    venv = ROOT / ".venv" / "bin" / "python"
    print(
        f"generate.py: {sys.executable} lacks the module {missing.name!r}: run `make venv`, then "
        f"`{venv.relative_to(Path.cwd()) if venv.is_relative_to(Path.cwd()) else venv} generate.py ...` "
        "(or activate .venv first)",
        file=sys.stderr,
    )
    sys.exit(1)

# troposphere's and awacs' __init__ with what they derive from the class kept per class, for the
# pinned versions only (infra_templates/troposphere_speed.py says how, why and what it saves).
from infra_templates.troposphere_speed import install as speed_up_troposphere  # noqa: E402

speed_up_troposphere()

from infra_templates.addons import AddonError  # noqa: E402
from infra_templates.config import Environment, Project, SettingsError, load_settings  # noqa: E402
from infra_templates.pipeline import (  # noqa: E402
    PROJECT_FOLDER,
    Stack,
    build_once,
    build_project_stacks,
    build_stacks,
    project_files,
)
from infra_templates.render import replace_folders  # noqa: E402
from templates import LAYERS, PROJECT_LAYERS, environment_output  # noqa: E402
from templates.release_files import delivery_files  # noqa: E402

EXIT_SETTINGS = 2
EXIT_CHANGES = 3
SCHEMA_FILE = ROOT / "schema" / "environment.schema.json"
DELIVERY_FOLDER = "delivery"  # output/delivery/<service>/: files for the application repositories
# deployed/<folder>/<region>/<stack>.json: each template as deploy.sh last deployed it, beside output/
# (deploy.sh writes it to $here/../../deployed), so no make target rewrites it. make diff compares with it.
DEPLOYED_FOLDER = "deployed"


def _path(text: str) -> Path:
    """A folder option's value: refused when empty (``--against "$UNSET"``), which Path would read as
    the working folder (argparse then exits 2 naming the option)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path (an unset variable?)")
    return Path(text)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="generate.py",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Settings live in environments/: defaults.yaml plus one <env>.yaml per environment.",
    )
    commands = parser.add_subparsers(dest="command", metavar="{build,check,diff,schema,diagram,cost}")
    build = commands.add_parser("build", help="write the templates (the default command)")
    check = commands.add_parser(
        "check", help="run the gate (wiring, limits, quotas, cfn-lint, checkov, IAM analysis, shellcheck) on output"
    )
    changes = commands.add_parser(
        "diff",
        help="build in memory and show what would change against written templates; exit 3 on changes, "
        "1 on a change AWS refuses",
        description="Build the environments in memory and compare with the templates in DIR/<env>/ (and, "
        "without --env, DIR/project/): stacks, resources (added, removed, changed, replaced), outputs. DIR is "
        "deployed/ by default: what deploy.sh recorded as deployed (DIR/<env>/<region>/<stack>.json); a copy of "
        "an earlier output/ (folders with a manifest.json) works too. Deleting "
        "or replacing a stateful resource prints a line starting with 'WARNING:'. Exit status: 0 no changes, "
        "3 changes, 1 a change AWS refuses (or a folder compared with that cannot be read), 2 the settings or "
        "a folder option refused.",
    )
    changes.add_argument(
        "--against",
        type=_path,
        metavar="DIR",
        help="folder to compare with, which must exist: a copy of an earlier output/ or a record deploy.sh "
        "wrote (default: the --deployed folder, deployed/ unless given, where a missing folder means nothing "
        "was deployed yet)",
    )
    schema_command = commands.add_parser(
        "schema", help="write schema/environment.schema.json (editor support) from the settings models"
    )
    schema_command.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if the committed schema is stale"
    )
    drawing = commands.add_parser(
        "diagram",
        help="draw DIR/<folder>/architecture.{dot,svg,png} from the templates written there (needs Graphviz's dot)",
    )
    drawing.add_argument("--env", action="append", metavar="NAME", help="draw only this folder (repeat for several)")
    check.add_argument(
        "--env",
        action="append",
        metavar="NAME",
        help="check only this environment's folder and the project folder its manifest names (repeat for "
        "several); default: every folder",
    )
    drawing.add_argument("--dot-only", action="store_true", help="write only the DOT source (no Graphviz needed)")
    pricing = commands.add_parser(
        "cost",
        help="fixed monthly cost of the templates in DIR at AWS list prices, per environment and stack",
        description="Price the templates written in DIR/<folder>/ (default: every folder with a manifest.json): "
        "the fixed monthly cost (730 h, no traffic) per folder and stack, and the usage-priced items with their "
        "unit prices. With --against OLD: what changes per month from OLD's templates to DIR's.",
    )
    pricing.add_argument("--env", action="append", metavar="NAME", help="price only this folder (repeat for several)")
    pricing.add_argument("--against", type=_path, metavar="DIR", help="show what changes against the templates in DIR")
    for sub in (parser, build, changes):
        sub.add_argument(
            "--env",
            action="append",
            metavar="NAME",
            help="build only this environment (repeat for several); default: every file in environments/",
        )
        sub.add_argument("--quiet", action="store_true", help="print nothing but errors")
        sub.add_argument(
            "--settings",
            type=_path,
            default=ROOT / "environments",
            metavar="DIR",
            help="folder of defaults.yaml and <env>.yaml files (default: environments/)",
        )
    for sub in (parser, build):
        sub.add_argument(
            "--diagrams",
            choices=("all", "dot", "none"),
            default="all",
            help="after writing, draw DIR/<folder>/architecture.*: all (DOT, and SVG and PNG when Graphviz's dot "
            "is installed; the default, as `make templates`), dot (the DOT source only), none",
        )
    for sub in (parser, build, changes):
        sub.add_argument(
            "--deployed",
            type=_path,
            metavar="DIR",
            help="what deploy.sh recorded as deployed (DIR/<folder>/<region>/<stack>.json), which the build judges "
            "updates against (deploy.sh refuses the blocked ones) and diff compares with; default: deployed/ "
            "beside the output folder. make passes $DEPLOYED_DIR, the variable deploy.sh records under",
        )
    for sub in (parser, build, drawing):
        sub.add_argument(
            "--diagram-detail",
            choices=("traffic", "all"),
            default="traffic",
            help="what an environment's diagram draws: traffic (the traffic paths, the default) or all (every "
            "resource and reference); the project's sheet is always drawn whole",
        )
    for sub in (parser, build, check, drawing, pricing):
        sub.add_argument(
            "--output", type=_path, default=ROOT / "output", metavar="DIR", help="output folder (default: output/)"
        )
    # An option given before the command (`generate.py --output X check`) must not be overwritten
    # by the command's own default for it: argparse's sub-parsers set their defaults over the values
    # the main parser read. So a command's copy of a main option has no default of its own.
    shared = {action.dest for action in parser._actions}
    for sub in (build, check, changes, drawing, pricing):
        for action in sub._actions:
            if action.dest == "env":  # --env before and after the command both count (merged below)
                action.dest = "env_after_command"
                action.default = argparse.SUPPRESS
            elif action.dest in shared and action.dest != "help":
                action.default = argparse.SUPPRESS
    args = parser.parse_args(argv)
    after = vars(args).pop("env_after_command", None)
    if after:
        args.env = [*(args.env or []), *after]
    if args.command is None:
        args.command = "build"
    return args


def run_build(names: list[str] | None, settings: Path, output: Path, quiet: bool, deployed: Path | None = None) -> int:
    """Write the folders of ``names`` (every environment and the project without), judging each update
    against ``deployed`` (default: ``deployed/`` beside ``output``, where deploy.sh records by default)."""
    unusable = _output_problem(output, settings) or _record_problem(deployed)
    if unusable:
        print(f"generate.py: {unusable}", file=sys.stderr)
        return EXIT_SETTINGS
    try:
        environments, project, everyone = load_settings(settings, names)
    except SettingsError as error:
        return _refuse(error.problems)
    try:
        with build_once():  # each environment's stacks once, however many stacks derive from them
            folders = _build_folders(
                names, environments, project, everyone, quiet, deployed=deployed or output.parent / DEPLOYED_FOLDER
            )
    except AddonError as error:  # an override naming what the built stacks lack, an add-on clashing
        return _refuse(error.problems)
    dropped = (
        [] if names else sorted(p.parent.name for p in output.glob("*/manifest.json") if p.parent.name not in folders)
    )
    replace_folders(output, folders, prune=not names)
    if not quiet:
        print(f"wrote {', '.join(f'{_relative(output / name)}/' for name in folders)}")
    _say_dropped(dropped, output, settings, deployed or output.parent / DEPLOYED_FOLDER, quiet)
    stages = project.delivery.stages
    for env in environments if not quiet else ():
        if env.name not in stages:
            print(
                f"note: {env.name} is not in delivery.stages ({', '.join(stages)}): it builds and deploys by hand "
                "(make deploy), but no release pipeline deploys to it (README, Adding an environment)"
            )
    return 0


def _say_dropped(dropped: list[str], output: Path, settings: Path, deployed: Path, quiet: bool) -> None:
    """Name each folder a full build removed (its environment's file is gone). One whose stacks
    deploy.sh recorded as deployed is said on stderr, even with --quiet: its deploy, status and destroy
    scripts went with it, and its stacks still run (and cost) until destroyed with them."""
    for name in dropped:
        stacks = sorted((deployed / name).glob("*/*.json")) if (deployed / name).is_dir() else []
        gone = f"removed {_relative(output / name)}/: {_relative(settings / f'{name}.yaml')} is gone"
        if stacks:
            print(
                f"generate.py: {gone}, but {_relative(deployed / name)}/ records {len(stacks)} "
                f"stack{'s' if len(stacks) != 1 else ''} of it as deployed: to delete "
                f"{'them' if len(stacks) != 1 else 'it'}, restore the file (git checkout), rebuild, run "
                f"`make destroy ENV={name}`, then delete the file again",
                file=sys.stderr,
            )
        elif not quiet:
            print(gone)


def _output_problem(output: Path, settings: Path) -> str | None:
    """Why a build cannot write ``output``, or None: a file or a symbolic link there would be replaced
    by the folder (the build swaps a whole new ``output`` in), and the settings folder, the working
    folder or one that holds either would be swapped with everything in it (copied first, as a
    user's files are; the working folder cannot be renamed at all)."""
    shown = _relative(output)
    if output.is_symlink():
        return (
            f"--output {shown}: is a symbolic link (to {os.readlink(output)}): a build swaps the folder in whole and "
            "would replace the link; give the folder it points to"
        )
    if output.exists() and not output.is_dir():
        return f"--output {shown}: is not a folder (a file there would be replaced by the output)"
    where, given, here = output.resolve(), settings.resolve(), Path.cwd().resolve()
    if where == given or where in given.parents:
        what = "is the settings folder" if where == given else f"holds the settings folder ({_relative(settings)}/)"
        return f"--output {shown}: {what}: give a folder of its own (default: output/ beside it)"
    if where == here or where in here.parents:
        what = "is the working folder" if where == here else "holds the working folder"
        return f"--output {shown}: {what}; a build swaps the whole folder in: give a folder of its own"
    return None


def _build_folders(
    names: list[str] | None,
    environments: list[Environment],
    project: Project,
    everyone: list[Environment],
    quiet: bool,
    *,
    deployed: Path,
) -> dict[str, dict[str, str]]:
    """Every folder's files (``{folder: {relative path: text}}``): the project's and the delivery
    files on a full build (no ``names``), and each environment's. Each ``deploy.sh`` refuses the
    stacks whose update the diff against ``deployed/`` blocks (:func:`_blocked`)."""
    project_stacks = build_project_stacks(project, PROJECT_LAYERS)
    folders: dict[str, dict[str, str]] = {}
    if not names:  # the project folder is written by full builds only
        _summary(quiet, "project", project_stacks)
    built: dict[str, list[Stack]] = {}
    blocked = _blocked(deployed, everyone, project_stacks)
    if not names:
        folders[PROJECT_FOLDER] = project_files(project, project_stacks, blocked)
    for env in environments:
        stacks, folders[env.name] = environment_output(env, everyone, project_stacks, LAYERS, blocked)
        built[env.name] = stacks
        _summary(quiet, env.name, stacks)
    if not names:  # the release files of every service, from every environment's stacks
        folders[DELIVERY_FOLDER] = delivery_files(project, built)
    written = [*(project_stacks if not names else []), *(s for stacks in built.values() for s in stacks)]
    for stack in (s for s in written if s.name in blocked) if not quiet else ():
        why = blocked[stack.name]
        if why.startswith("cannot deploy"):  # ALLOW_REPLACE only lets the script try: the update fails
            kind, way = "cannot deploy, AWS would refuse the update", "change the settings until it no longer says so"
        else:
            kind = "replaces or deletes a stateful resource" if "STATEFUL" in why else why
            way = f"its deploy.sh refuses it unless ALLOW_REPLACE={stack.name}"
        print(f"blocked  {stack.name}: {kind}, against {_relative(deployed)}/ (`make diff` says why); {way}")
    return folders


def _blocked(deployed: Path, everyone: list[Environment], project_stacks: list[Stack]) -> dict[str, str]:
    """``{stack: why}``: the stacks whose update would replace or delete a stateful resource, or that
    AWS would refuse (``make diff``'s ``cannot deploy``), judged against what ``deploy.sh`` recorded in
    ``deployed/<folder>/``; only folders with a record are built for it."""
    recorded = {p.name for p in deployed.iterdir() if p.is_dir()} if deployed.is_dir() else set()
    if not recorded:
        return {}
    from infra_templates import diff  # noqa: PLC0415 - only a build beside a deployed/ record needs it

    blocked: dict[str, str] = {}
    folders = [(PROJECT_FOLDER, project_stacks), *((e.name, None) for e in everyone)]
    for name, given in folders:
        if name not in recorded:
            continue
        stacks = given if given is not None else build_stacks(next(e for e in everyone if e.name == name), LAYERS)
        try:
            old = diff.read_deployed(deployed / name) or []
        except diff.DiffError as error:  # a record no diff can read: no stack of it goes unjudged
            blocked.update((s.name, f"{error}: the diff cannot judge the update") for s in stacks)
            print(
                f"generate.py: {error}: every stack of {name} is marked blocked in its DEPLOY.md and deploy.sh "
                "(fix or remove the record, then build again)",
                file=sys.stderr,
            )
            continue
        blocked.update(diff.blocked_stacks(old, [diff.StackTemplate(s.name, s.region, s.body) for s in stacks]))
    return blocked


def _refuse(problems: list[str], what: str = "nothing was written") -> int:
    print(f"Refused: {what}. Fix these settings:", file=sys.stderr)
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


def diff_baseline(against: Path | None, deployed: Path | None, output: Path = ROOT / "output") -> Path:
    """The folder ``diff`` compares with: ``--against DIR``, else the ``--deployed`` record, else
    ``deployed/`` beside ``output`` (what deploy.sh records by default, and what a build with the same
    ``--output`` judges its updates against)."""
    chosen = against or deployed
    return chosen if chosen is not None else output.parent / DEPLOYED_FOLDER


def _baseline_problem(
    against: Path | None, deployed: Path | None, baseline_folders: Callable[[Path], list[str]]
) -> str | None:
    """Why diff cannot compare with the folder given, or None: ``--against`` must be a folder holding
    a baseline (an output's ``<folder>/manifest.json`` or a record's ``<folder>/<region>/<stack>.json``)
    or nothing at all (every stack new, as ``cost --against`` an empty folder): a folder the user
    typed, where a typo must not read as "nothing deployed"; ``--deployed`` may be
    missing (nothing deployed yet) but not a file; the two name two baselines."""
    what = "a copy of an earlier output/, or what deploy.sh recorded"
    if against is not None and deployed is not None:
        return f"--against {against} and --deployed {deployed} name two folders to compare with; give one"
    if against is not None and not against.is_dir():
        return f"--against {against}: {'is not a' if against.exists() else 'no such'} folder ({what})"
    if against is not None and (against / "manifest.json").is_file():
        return f"--against {against}: is one folder of an output; give the folder that holds it ({against.parent})"
    if against is not None and not baseline_folders(against) and any(against.iterdir()):  # empty: nothing before
        return f"--against {against}: holds no <folder>/manifest.json nor <folder>/<region>/<stack>.json ({what})"
    return _record_problem(deployed)


def _record_problem(deployed: Path | None) -> str | None:
    """Why ``--deployed`` cannot be deploy.sh's record, or None. A missing folder is nothing deployed
    yet, and so is one holding nothing but notes (README files, hidden files); a file, or a folder
    with no ``<folder>/<region>/<stack>.json`` (an AWS region's name in the middle: another folder
    typed, or ``DEPLOYED_DIR`` set to it), is refused: read as "nothing recorded", it would judge
    every update as a first deploy and let one that replaces a database through."""
    from infra_templates.settings.common import REGIONS  # noqa: PLC0415 - only for a --deployed given

    what = "what deploy.sh records"
    if deployed is None or not deployed.exists():
        return None
    if not deployed.is_dir():
        return f"--deployed {deployed}: is not a folder ({what}: <folder>/<region>/<stack>.json)"
    entries = [p for p in deployed.iterdir() if not p.name.startswith(".")]
    folders = [p for p in entries if p.is_dir()]

    def recorded(folder: Path) -> bool:  # <region>/<stack>.json below it
        return any(r.is_dir() and r.name in REGIONS and any(r.glob("*.json")) for r in folder.iterdir())

    if (deployed / "manifest.json").is_file() or any((p / "manifest.json").is_file() for p in folders):
        why = f"is an output, not {what} (diff --against compares with an output)"
    elif any(recorded(p) for p in folders) or all(  # a record, or notes alone (nothing deployed yet)
        p.is_file() and p.name.upper().startswith("README") for p in entries
    ):
        return None
    elif recorded(deployed):
        why = f"is one folder of the record; give the folder that holds it ({deployed.parent})"
    else:
        why = f"holds no <folder>/<region>/<stack>.json ({what})"
    return f"--deployed {deployed}: {why}"


def run_diff(
    names: list[str] | None,
    settings: Path,
    against: Path | None,
    quiet: bool,
    *,
    deployed: Path | None = None,
    output: Path = ROOT / "output",
) -> int:
    """Compare freshly built stacks with DIR/<folder>/ (:func:`diff_baseline`), folder by folder, as a
    build would write them: without --env also the project folder, and folders of environments whose
    file was deleted. ``against`` names a folder the user typed: a missing one is refused (exit 2, as
    ``cost --against``). The deploy record may not exist yet: before a first deploy, every stack is new."""
    from infra_templates import diff  # noqa: PLC0415 - each command imports only what it runs

    unusable = _baseline_problem(against, deployed, diff.baseline_folders)
    if unusable:
        print(f"diff: {unusable}", file=sys.stderr)
        return EXIT_SETTINGS
    given_against = against is not None
    against = diff_baseline(against, deployed, output)

    try:
        environments, project, _ = load_settings(settings, names)
    except SettingsError as error:
        return _refuse(error.problems, "nothing was compared")
    try:
        with build_once():
            folders: list[tuple[str, list[Stack]]] = [(env.name, build_stacks(env, LAYERS)) for env in environments]
            if not names:
                folders.insert(0, (PROJECT_FOLDER, build_project_stacks(project, PROJECT_LAYERS)))
    except AddonError as error:
        return _refuse(error.problems, "nothing was compared")
    if not names:
        built = {name for name, _ in folders}
        gone = [name for name in diff.baseline_folders(against) if name not in built]
        folders.extend((name, []) for name in gone)
    changed = refused = False
    for name, stacks in folders:
        try:
            old = diff.read_baseline(against / name)
        except diff.DiffError as error:
            print(f"diff: {error}", file=sys.stderr)
            return 1
        label = f"{name} (against {_relative(against / name)}/)"
        if old is None:
            label += (
                ": nothing there, every stack is new"
                if given_against
                else ": nothing recorded there (deploy.sh records each stack it deploys), every stack is new"
            )
        diffs = diff.diff_stacks(old or [], [diff.StackTemplate(s.name, s.region, s.body) for s in stacks])
        changed = changed or any(d.changed for d in diffs)
        refused = refused or any(d.cannot_deploy for d in diffs)
        if not quiet:
            print("\n".join(diff.report(label, diffs)))
    if refused:
        return 1
    return EXIT_CHANGES if changed else 0


def run_schema(check: bool) -> int:
    from infra_templates import schema  # noqa: PLC0415 - each command imports only what it runs

    shown = _relative(SCHEMA_FILE)
    if check:
        if schema.is_current(SCHEMA_FILE):
            return 0
        print(f"{shown} is stale: the settings models changed; run `make schema` and commit it", file=sys.stderr)
        return 1
    schema.write(SCHEMA_FILE)
    print(f"wrote {shown}")
    return 0


def run_diagram(names: list[str] | None, output: Path, dot_only: bool, detail: str = "traffic") -> int:
    from infra_templates import diagram  # noqa: PLC0415 - each command imports only what it runs

    if _nothing_built("diagram", output) or _unbuilt("diagram", names, output):
        return EXIT_SETTINGS
    folders = _folders(output, names)
    try:
        for folder in folders:
            diagram.write(folder, dot_only=dot_only, detail=detail)
    except diagram.DiagramError as error:
        print(f"diagram: {_not_drawn(folder, output, error)}", file=sys.stderr)
        return 1
    drawn = "architecture.dot" if dot_only else "architecture.*"
    print(f"drew {', '.join(f'{_relative(f)}/{drawn}' for f in folders)}")
    return 0


def _not_drawn(folder: Path, output: Path, error: Exception) -> str:
    """Why ``folder``'s diagram was not drawn: where the output has no project folder (a build with
    --env into a new output), that and what to do, not the file the reader missed."""
    project = output / PROJECT_FOLDER
    if folder != project and not (project / "manifest.json").is_file():
        return (
            f"{_relative(folder)} not drawn: its diagram reads the project's stacks, and {_relative(project)}/ was "
            "never built there (a build with --env writes only those environments' folders: build without --env "
            "once, as `make templates` does, and --env draws from then on)"
        )
    return f"{_relative(folder)} not drawn: {error}"


def run_cost(names: list[str] | None, output: Path, against: Path | None) -> int:
    from infra_templates import cost  # noqa: PLC0415 - each command imports only what it runs

    if against is not None and not against.is_dir():
        print(f"cost: --against {against}: no such folder (a copy of an earlier output/)", file=sys.stderr)
        return 2
    if _nothing_built("cost", output) or _unbuilt("cost", names, output):
        return EXIT_SETTINGS
    estimates, failed = [], []
    for folder in _folders(output, names):
        try:  # each folder on its own: one region without prices leaves the others' figures
            estimates.append(cost.read_folder(folder))
        except cost.CostError as error:
            failed.append(f"cost: {folder.name} left out: {error}")
    try:
        old = cost.read_output(against, names, missing_ok=True) if against is not None else None
    except cost.CostError as error:
        print(f"cost: {error}", file=sys.stderr)
        return 1
    if estimates:
        print("\n".join(cost.report(estimates, detail=old is None) if old is None else cost.compare(old, estimates)))
    if failed:
        print("\n".join(failed), file=sys.stderr)
        return 1
    return 0


def _folders(output: Path, names: list[str] | None) -> list[Path]:
    """The folders of ``output`` a command reads: those ``names`` names, else every built one (a
    ``manifest.json``), sorted."""
    return [output / name for name in names] if names else sorted(p.parent for p in output.glob("*/manifest.json"))


def _nothing_built(command: str, output: Path) -> bool:
    """Whether ``output`` holds no built folder (no ``*/manifest.json``): missing, a file, or a folder
    of something else, said on stderr; the caller exits 2, as for a folder option that cannot be used
    (1 would read as "the gate found problems" in a user's CI)."""
    if output.is_dir() and any(output.glob("*/manifest.json")):
        return False
    shown = _relative(output) + ("" if output.is_file() else "/")
    if not output.exists():
        why = "no such folder"
    elif not output.is_dir():
        why = "is a file, not a folder"
    else:
        why = "no manifest.json in any of its folders"
    hint = "run `make templates` first, or give --output the folder it wrote"
    print(f"{command}: {shown}: {why}: {hint}", file=sys.stderr)
    return True


def _unbuilt(command: str, names: list[str] | None, output: Path) -> bool:
    """Whether an ``--env`` names a folder of ``output`` without a manifest.json, said on stderr as the
    gate says it for ``check --env`` (the same exit status, 2, by the caller)."""
    from infra_templates.config import did_you_mean  # noqa: PLC0415 - only for a folder that is not there
    from infra_templates.settings.project import RESERVED_MEANINGS  # noqa: PLC0415

    built = sorted(p.parent.name for p in output.glob("*/manifest.json"))
    refused = False
    for name in names or ():
        folder = output / name
        if name in built:
            continue
        if Path(name).name != name or name in (".", ".."):
            why = "is a path; --env takes the name of a folder of the output"
        elif name == "defaults":
            why = f"{RESERVED_MEANINGS['defaults']}, not a folder of the output"
        elif folder.is_dir():
            why = f"{_relative(folder)}/ has no manifest.json: not an environment's nor the project's folder"
        else:
            why = f"{_relative(folder / 'manifest.json')} is not there (run `make templates`)"
        meant = Path(name).name.removesuffix(".yaml").removesuffix(".yml")  # ../output/dev, dev.yaml: dev
        hint = f"; did you mean {meant!r}?" if meant != name and meant in built else did_you_mean(name, built)
        print(f"{command}: --env {name}: {why}{hint}; folders: {', '.join(built) or 'none'}", file=sys.stderr)
        refused = True
    return refused


def _relative(path: Path) -> str:
    """The path as the user would type it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# The options of the main parser (given before the command) each command uses; another given there
# is refused rather than ignored (`generate.py --settings other/ cost` priced output/ without a word).
USED_OPTIONS = {
    "build": {"env", "quiet", "settings", "diagrams", "deployed", "diagram_detail", "output"},
    "diff": {"env", "quiet", "settings", "deployed", "output"},
    "check": {"env", "output"},
    "diagram": {"env", "output", "diagram_detail"},
    "cost": {"env", "output"},
    "schema": set(),
}
_OPTION_DEFAULTS = {
    "env": None,
    "quiet": False,
    "settings": ROOT / "environments",
    "diagrams": "all",
    "deployed": None,
    "diagram_detail": "traffic",
    "output": ROOT / "output",
}


def _unused_options(args: argparse.Namespace) -> list[str]:
    """The options given with a value other than their default that ``args.command`` does not use."""
    used = USED_OPTIONS[args.command]
    return [
        "--" + name.replace("_", "-")
        for name, default in _OPTION_DEFAULTS.items()
        if name not in used and getattr(args, name, default) != default
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    unused = _unused_options(args)
    if unused:
        print(
            f"generate.py {args.command}: {', '.join(unused)}: not used by {args.command}; remove it", file=sys.stderr
        )
        return EXIT_SETTINGS
    if args.command not in (None, "build", "diff", "schema"):
        gc.enable()  # the gate, the diagrams and the cost read files and run tools: the usual collector
    commands: dict[str, Callable[[], int]] = {
        "check": lambda: run_check(args.output, args.env),
        "schema": lambda: run_schema(args.check),
        "diagram": lambda: run_diagram(args.env, args.output, args.dot_only, args.diagram_detail),
        "cost": lambda: run_cost(args.env, args.output, args.against),
        "diff": lambda: run_diff(
            args.env, args.settings, args.against, args.quiet, deployed=args.deployed, output=args.output
        ),
    }
    return commands.get(args.command, lambda: build_and_draw(args))()


def run_check(output: Path, names: list[str] | None) -> int:
    """The gate on ``output`` (every folder, or ``names``'): a name that is no built folder refused
    as cost and diagram refuse it (exit 2)."""
    # The gate's module (and cfn-lint, in its workers) is imported only by the gate: a build
    # that imported them spent more time importing than building.
    from infra_templates import checks  # noqa: PLC0415

    if _nothing_built("gate", output) or _unbuilt("gate", names, output):
        return EXIT_SETTINGS
    return checks.run_gate(output, environments=names)


def build_and_draw(args: argparse.Namespace) -> int:
    """The build command: write the folders, then draw what was written (``--diagrams``)."""
    status = run_build(args.env, args.settings, args.output, args.quiet, args.deployed)
    if status != 0 or args.diagrams == "none":
        return status
    return _draw_built(args.env, args.output, args.diagrams, args.quiet, args.diagram_detail)


def _draw_built(names: list[str] | None, output: Path, diagrams: str, quiet: bool, detail: str = "traffic") -> int:
    """The build draws the diagrams of what it wrote, as ``make templates`` does, so both leave the
    same files (a build swaps each folder whole: it used to drop the diagrams drawn into them). The
    DOT source needs nothing; SVG and PNG need Graphviz's ``dot``: without it only the DOT is
    written, and the build says so. A folder that cannot be drawn (``--env`` into an output without
    the project folder its diagram reads) is named, and the build still succeeds: its templates are
    written."""
    import shutil  # noqa: PLC0415

    from infra_templates import diagram  # noqa: PLC0415 - each command imports only what it runs

    dot_only = diagrams == "dot"
    if not dot_only and shutil.which("dot") is None:
        dot_only = True
        if not quiet:
            print("diagrams: DOT source only, Graphviz's dot is not installed (`make dot` installs it)")
    folders = _folders(output, names)
    for folder in folders:
        try:
            diagram.write(folder, dot_only=dot_only, detail=detail)
        except (diagram.DiagramError, OSError) as error:
            print(f"diagrams: {_not_drawn(folder, output, error)}", file=sys.stderr)
    return 0


EXIT_READER_GONE = 128 + 13  # 128 + SIGPIPE: what a shell reports for a command a closed pipe stopped


def stdout_closed() -> int:
    """A reader that stopped reading (``generate.py | head``): no traceback, and the status a shell
    gives a command that a closed pipe stopped (141), which no command of this tool uses for anything
    else (1 is a failed gate or a change AWS refuses, 2 settings refused, 3 changes found). The rest
    of stdout goes to /dev/null, as the Python documentation's note on SIGPIPE does it
    (https://docs.python.org/3/library/signal.html#note-on-sigpipe), so the interpreter's own flush
    at exit finds nothing to report. A build stopped this way wrote nothing, or everything: its
    summary is printed before the folders are swapped in, and flushed after."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_READER_GONE


if __name__ == "__main__":
    try:
        status = main()
        sys.stdout.flush()  # here, not at exit: a reader gone since the last line is handled below
    except BrokenPipeError:
        status = stdout_closed()
    # At exit the interpreter runs one last full collection over every object the run made, even
    # with the collector disabled (it clears the modules, then collects): with gc.disable() above,
    # all of a build's objects are still in the youngest generation, and that pass over them cost
    # about 80 ms CPU of a 650 ms build of every shipped environment, to free memory the operating
    # system takes back a moment later anyway. gc.freeze() moves them to the permanent generation,
    # which no collection visits; atexit handlers and buffered output still run and are flushed as
    # usual, then _exit_without_teardown ends the process with this status.
    gc.freeze()
    _exit_status = status
    sys.exit(status)
