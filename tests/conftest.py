"""Shared fixtures and helpers: the tool's fixture environments, their built stacks, and small queries.

The tool's tests never read the user's settings (``environments/``): they build from the fixture
environments in ``tests/fixtures/environments/`` (SETTINGS), so a user's valid change of their own
settings keeps ``make test`` green. An audit hook fails any test that opens a file in ``environments/``.
"""

from __future__ import annotations

import fcntl
import gc
import io
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

if TYPE_CHECKING:  # the toolkit is imported where the tests need it: not in pytest-xdist's controller
    from infra_templates.config import Environment, Project
    from infra_templates.pipeline import Stack


def _temporary_files_in_memory(folder: Path = Path("/dev/shm"), room: int = 2**30) -> None:
    """The tests' temporary folders (tmp_path, tmp_path_factory: pytest reads tempfile.gettempdir())
    in memory, on Linux's tmpfs, where TMPDIR (TEMP, TMP) names no other place and the tmpfs has room.

    A run writes some 13,000 files (outputs built, copied, broken) that pytest keeps for three
    sessions, then deletes at the end of a later session, every session of the user's: on a disk
    whose deletes are slow (this machine's, mounted with online discard: 1.6 ms a file once
    written out), that took 10 to 45 s of wall time at the end of `make unit`, and in the session
    test_independence runs in its copy of the project, for almost no CPU. In memory the same files
    cost a fraction of the system CPU, and no one else's session deletes them."""
    if any(os.environ.get(name) for name in ("TMPDIR", "TEMP", "TMP")) or not folder.is_dir():
        return
    try:
        free = os.statvfs(folder)
    except OSError:
        return
    if free.f_bavail * free.f_frsize >= room and os.access(folder, os.W_OK | os.X_OK):
        tempfile.tempdir = str(folder)


_temporary_files_in_memory()  # before pytest asks for its base folder (the first fixture that needs one)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
SETTINGS = FIXTURES / "environments"  # the tool's own test settings: what the golden files are recorded from
USER_SETTINGS = ROOT / "environments"  # the user's: read by `make templates` and the gate, never by these tests


@dataclass(frozen=True)
class Built:
    environments: dict[str, Environment]
    project: Project
    project_stacks: dict[str, Stack]
    stacks: dict[str, dict[str, Stack]]  # env -> stack layer ("network", "svc-api") -> stack
    files: dict[str, dict[str, str]]  # output folder ("dev", "project") -> file name -> text


def build_all(settings: Path = SETTINGS) -> Built:
    """Every stack and output file of ``settings``, as ``generate.py`` builds them: inside
    ``build_once``, so each environment's layers are built once however many stacks need them (its
    own folder, its DR pair's, the deployer's roles, the infrastructure pipeline): 0.26 s of CPU for
    the fixtures instead of 0.9 s. The template data is shared between those stacks: read it, or
    ``copy.deepcopy`` it before changing it."""
    from infra_templates.config import load_settings  # noqa: PLC0415 (see the TYPE_CHECKING imports)
    from infra_templates.pipeline import PROJECT_FOLDER, build_once, build_project_stacks, project_files  # noqa: PLC0415
    from templates import PROJECT_LAYERS, environment_output  # noqa: PLC0415

    with build_once():
        _, project, everyone = load_settings(settings)
        environments = {env.name: env for env in everyone}
        shared = build_project_stacks(project, PROJECT_LAYERS)
        stacks: dict[str, dict[str, Stack]] = {}
        files = {PROJECT_FOLDER: project_files(project, shared)}
        for name, env in environments.items():
            built, files[name] = environment_output(env, list(environments.values()), shared)
            stacks[name] = {s.layer: s for s in built}
    return Built(environments, project, {s.layer: s for s in shared}, stacks, files)


def build_environment(settings: Path, name: str) -> dict[str, Stack]:
    """``build_all(settings).stacks[name]`` without building the rest: that environment's stacks (by
    layer), built as ``generate.py`` builds its folder (with its DR pair's settings). The project's
    stacks build every environment for the infrastructure pipeline; an environment's stacks do not
    depend on them (0.06 to 0.15 s of CPU instead of 0.26 s)."""
    from infra_templates.config import load_settings  # noqa: PLC0415
    from infra_templates.pipeline import build_once  # noqa: PLC0415
    from templates import paired_stacks  # noqa: PLC0415

    _, _, everyone = load_settings(settings)
    [env] = [e for e in everyone if e.name == name]
    with build_once():
        stacks, _ = paired_stacks(env, everyone)
    return {s.layer: s for s in stacks}


# --- the guard: no test reads the user's settings ------------------------------------------------
#
# Every open(), listdir() and scandir() of this process passes an audit hook (PEP 578) that records
# paths inside the user's environments/; every generate.py or bench.py started with subprocess must
# name its settings. A test that does either fails at teardown, naming what it read or ran.

_USER_PREFIX = str(USER_SETTINGS) + os.sep
_READS_SETTINGS = {None, "build", "diff"}  # generate.py's commands that read settings (None: the default, build)
_TAKES_A_VALUE = {"--env", "--settings", "--output", "--against", "--diagrams", "--diagram-detail", "--deployed"}
_USER_DEFAULTING = {str(ROOT / "generate.py"), str(ROOT / "bench" / "bench.py")}
_seen_user_settings: list[str] = []


def _command(argv: list[str]) -> tuple[int, str | None]:
    """generate.py's command in its arguments and the index where that command's own options start
    (0 and None when there is none: the default command, build)."""
    i = 0
    while i < len(argv):
        if argv[i] in _TAKES_A_VALUE:
            i += 2
        elif argv[i].startswith("-"):
            i += 1
        else:
            return i + 1, argv[i]
    return 0, None


def _reads_user_settings(argv: list[str], cwd: str) -> bool:
    """Whether a command line runs this checkout's generate.py (a command of it that reads settings) or
    bench.py without --settings: both default to the user's environments/."""
    for i, arg in enumerate(argv):
        script = os.path.normpath(os.path.join(cwd, arg))
        if script not in _USER_DEFAULTING:
            continue
        rest = argv[i + 1 :]
        if {"--settings", "--help", "-h"} & set(rest):
            return False
        return script.endswith("bench.py") or _command(rest)[1] in _READS_SETTINGS
    return False


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event in ("open", "os.listdir", "os.scandir"):
        path = args[0]
        if isinstance(path, (str, bytes, os.PathLike)):
            text = os.path.abspath(os.fsdecode(path))
            # The folder itself only when listed: opening it reads no settings, and shutil.rmtree
            # opens each folder it empties by its bare name beside its parent's descriptor (a test's
            # copy, tmp_path/environments, which the audit event cannot tell from ours)
            if text.startswith(_USER_PREFIX) or (text == str(USER_SETTINGS) and event != "open"):
                _seen_user_settings.append(f"{event} {text}")
    elif event == "subprocess.Popen":
        _, argv, cwd, _ = args
        if isinstance(argv, (list, tuple)):
            words = [os.fsdecode(a) for a in argv if isinstance(a, (str, bytes, os.PathLike))]
            if _reads_user_settings(words, os.fsdecode(cwd) if cwd is not None else os.getcwd()):
                _seen_user_settings.append(f"ran {' '.join(words)} (without --settings: reads environments/)")


sys.addaudithook(_audit)


@pytest.fixture(autouse=True)
def _the_users_settings_are_not_read() -> Iterator[None]:
    """Fails (at teardown) the test that read the user's settings; the first test also answers for collection."""
    yield
    read = _seen_user_settings[:]
    _seen_user_settings.clear()
    assert not read, (
        "the tool's tests must not read the user's settings (environments/); use SETTINGS "
        f"(tests/fixtures/environments/) or generate(...), which passes --settings: {read}"
    )


def generate_command(*args: str) -> list[str]:
    """``python generate.py ARGS`` with ``--settings SETTINGS`` added where the command reads settings and
    the arguments name none (a test that means other settings passes its own ``--settings``)."""
    argv = list(args)
    at, command = _command(argv)
    if command in _READS_SETTINGS and not {"--settings", "--help", "-h"} & set(argv):
        argv[at:at] = ["--settings", str(SETTINGS)]
    return [sys.executable, str(ROOT / "generate.py"), *argv]


def generate(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run generate.py as users do (from the fixtures, see generate_command); never raises on exit status."""
    return subprocess.run(generate_command(*args), capture_output=True, text=True, cwd=cwd, env=env, check=False)


def generate_main(*args: str) -> tuple[int, str, str]:
    """generate.py's ``main`` in this process, arguments as for ``generate``: (exit status, stdout, stderr).
    The same code as the command without an interpreter's start-up and imports (~0.9 s CPU a call)."""
    import generate as cli  # noqa: PLC0415  (generate.py: the composition root, imported when needed)

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            status = cli.main(generate_command(*args)[2:])
        except SystemExit as exit_:  # argparse refusing the arguments
            status = exit_.code if isinstance(exit_.code, int) else 1
    return status, out.getvalue(), err.getvalue()


@dataclass(frozen=True)
class Generated:
    output: Path  # output/ of every fixture environment and the project, as `generate.py` writes it
    stdout: str  # its summary lines


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Generated:
    """One full ``generate.py`` run over the fixtures (PYTHONHASHSEED=1), shared by the tests that need
    written output: read it, or copy it (``shutil.copytree``) before changing anything.

    One run for the whole test session: the pytest-xdist workers share it (the first to ask builds it
    under a lock in their common temporary folder, the others wait and read it), where each used to
    build and draw its own copy."""
    shared = tmp_path_factory.getbasetemp()
    # An xdist worker (its config has xdist's workerinput; not xdist's worker_id fixture, which
    # `-p no:xdist` removes): its base folder's parent is the run's, shared by all
    if hasattr(request.config, "workerinput"):
        shared = shared.parent
    folder = shared / "generated"
    folder.mkdir(exist_ok=True)
    output, printed = folder / "output", folder / "stdout.txt"
    with (folder / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not printed.exists():
            result = generate("--output", str(output), env={**os.environ, "PYTHONHASHSEED": "1"})
            assert result.returncode == 0, result.stderr
            printed.write_text(result.stdout)
    return Generated(output, printed.read_text())


# The garbage collector: a collection walks every object alive in its generations, and the tests
# keep hundreds of thousands alive for the whole session (BUILT's templates, cfn-lint's schemas,
# botocore's models), which it never frees. So it runs less often (every 10,000 allocations rather
# than 700), and BUILT is frozen out of its reach once built (gc.freeze): it took a fifth of the
# tests' CPU (1.9 of 8.2 s in test_invariants, test_services and test_handover; now 0.4 s). Not
# frozen after collection as well: Hypothesis checks, with gc.get_referrers, that its own random
# generator is referred to, and a frozen module's dict is not seen (a HypothesisWarning).
gc.set_threshold(10_000, 10, 10)

# Built once before collection, so tests can be parametrized over every stack that exists: in a
# process that collects tests (a pytest-xdist worker, or pytest without workers), at the start of its
# session (pytest_sessionstart), before the test modules are imported; never in xdist's controller,
# which runs no test (it built them in vain: 0.9 s of CPU with the imports). The names below are this
# module's attributes (``from conftest import BUILT``), made on first use (PEP 562 ``__getattr__``).
ENVIRONMENTS: list[str]
BUILT: Built
STACK_CASES: list[tuple[str, str]]
PROJECT_CASES: list[tuple[str, str]]
ALL_CASES: list[tuple[str, str]]
SERVICES: list[str]
KINDS: dict[str, str]
WEB_SERVICES: list[str]  # those behind the load balancer
_LAZY = ("ENVIRONMENTS", "BUILT", "STACK_CASES", "PROJECT_CASES", "ALL_CASES", "SERVICES", "KINDS", "WEB_SERVICES")
_MADE: dict[str, Any] = {}


def _built() -> Built:
    if "BUILT" not in _MADE:
        from infra_templates.config import available_environments  # noqa: PLC0415

        environments = available_environments(SETTINGS)
        built = build_all()
        gc.freeze()  # kept for the session (see above)
        stack_cases = [(env, layer) for env in environments for layer in built.stacks[env]]
        project_cases = [("project", layer) for layer in built.project_stacks]
        services = sorted(built.project.services)
        kinds = {name: service.kind for env in built.environments.values() for name, service in env.services.items()}
        _MADE.update(
            ENVIRONMENTS=environments,
            STACK_CASES=stack_cases,
            PROJECT_CASES=project_cases,
            ALL_CASES=project_cases + stack_cases,
            SERVICES=services,
            KINDS=kinds,
            WEB_SERVICES=[name for name in services if kinds[name] == "web"],
            BUILT=built,  # last: what marks the rest as made
        )
    built_: Built = _MADE["BUILT"]
    return built_


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        _built()
        return _MADE[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@pytest.hookimpl(tryfirst=True)  # in xdist's controller, before it starts its workers
def pytest_sessionstart(session: pytest.Session) -> None:
    if session.config.pluginmanager.has_plugin("dsession"):  # xdist's controller: no tests here
        _compile_once_for_the_workers(session.config)
    else:
        _built()


def _compile_once_for_the_workers(config: pytest.Config) -> None:
    """The project's modules compiled and the test modules' assertions rewritten into their caches
    (``__pycache__``) where they are not there yet (a fresh clone), once, before the workers start:
    each worker did both for itself, at the same moment as the other (1.3 s of CPU each on a fresh
    clone). Where the caches are current, this reads them only (0.1 s)."""
    if sys.dont_write_bytecode:
        return
    import compileall  # noqa: PLC0415

    for folder in (ROOT / "src", ROOT / "templates"):
        compileall.compile_dir(folder, quiet=2)
    for module in (ROOT / "generate.py", ROOT / "tests" / "aws_cli.py"):
        compileall.compile_file(module, quiet=2)
    try:  # pytest's own cache of a test module, as its import hook writes it (AssertionRewritingHook.exec_module)
        from _pytest.assertion import rewrite  # noqa: PLC0415

        state = config.stash[rewrite.assertstate_key]
        for source in sorted((ROOT / "tests").glob("test_*.py")):
            cache = rewrite.get_cache_dir(source)
            pyc = cache / (source.name[:-3] + rewrite.PYC_TAIL)
            if rewrite._read_pyc(source, pyc, state.trace) is None and rewrite.try_makedirs(cache):
                source_stat, code = rewrite._rewrite_test(source, config)
                rewrite._write_pyc(state, code, source_stat, pyc)
    except Exception:  # pytest's internals changed: each worker rewrites its own, as before
        return


def stack_of(env: str, layer: str) -> Stack:
    """A built stack; ``env`` "project" names the project-wide stacks."""
    built = _built()
    return built.project_stacks[layer] if env == "project" else built.stacks[env][layer]


@pytest.fixture(scope="session")
def environments() -> dict[str, Environment]:
    return _built().environments


@pytest.fixture(scope="session")
def stacks() -> dict[str, dict[str, Stack]]:
    """``stacks[env][layer]`` for every shipped environment; services are ``svc-<name>``."""
    return _built().stacks


@pytest.fixture(scope="session")
def project_stacks() -> dict[str, Stack]:
    return _built().project_stacks


@pytest.fixture
def settings_dir(tmp_path: Path) -> Path:
    """A writable copy of environments/ to break on purpose."""
    folder = tmp_path / "environments"
    shutil.copytree(SETTINGS, folder)
    return folder


def refusal(settings_dir: Path, env: str = "staging") -> str:
    """The message loading ``env`` from ``settings_dir`` is refused with (failing if it loads)."""
    from infra_templates.config import SettingsError, load_environment  # noqa: PLC0415

    with pytest.raises(SettingsError) as caught:
        load_environment(env, settings_dir)
    return str(caught.value)


def edit_yaml(path: Path, **changes: Any) -> None:
    """Set keys in a YAML file; ``network__cidr=...`` reaches into mappings (``__`` for ``.``)."""
    data = yaml.safe_load(path.read_text()) or {}
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def resources(body: dict[str, Any], type_: str | None = None) -> dict[str, dict[str, Any]]:
    """The resources of a template, optionally only those of one type."""
    return {k: v for k, v in body.get("Resources", {}).items() if type_ is None or v["Type"] == type_}


def walk(node: Any) -> Iterator[Any]:
    """Every dict, list and scalar in a template, depth first."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def all_stacks() -> list[tuple[str, str, Stack]]:
    _built()
    return [(env, layer, stack_of(env, layer)) for env, layer in _MADE["ALL_CASES"]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first: run two at a time (`make unit`), they overlap the many fast ones instead of
    trailing; but those marked ``last`` last (in `make test`, the gate beside the tests has by then
    kept its findings on the templates they share)."""
    items.sort(key=lambda item: (item.get_closest_marker("last") is not None, item.get_closest_marker("slow") is None))


@pytest.fixture(scope="session")
def codedeploy_built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The shipped settings with ``deployment.controller: codedeploy``: blue/green services that
    CodeDeploy releases (the ECS controller is the default)."""
    folder = tmp_path_factory.mktemp("codedeploy") / "environments"
    shutil.copytree(SETTINGS, folder)
    # Service Connect is not for services CodeDeploy releases (ECS Developer Guide, "Service Connect
    # considerations"): here the api calls no backend.
    edit_yaml(folder / "defaults.yaml", deployment__controller="codedeploy", services__api__calls=[])
    return build_all(folder)


@pytest.fixture(scope="session", autouse=True)
def checkov_fork_server() -> Iterator[None]:
    """The session's checkov runs (a dozen, each on a small output) forked from a server that
    imported checkov once, as the gate would run each (checks.serve_checkov); ended and waited for
    at the end, so its CPU time is counted with this process's."""
    from infra_templates import checks  # noqa: PLC0415

    checks.serve_checkov()
    yield
    checks.stop_checkov_servers()
