"""The real AWS CLI (awscli v1, the botocore the gate's checkov pins) as a parser and validator of
the commands the output prints, without network: every API call is stopped after botocore has
validated its parameters against the service model (``before-call``: no request leaves).

``commands(text)`` finds each ``aws …`` command in a shell script or a Markdown file (lines joined
at a trailing backslash, cut at the first unquoted ``)``, ``|``, backquote, ``;``, ``&``, ``>``, the
file descriptor of a ``2>`` left out);
``run(argv)`` runs one through ``awscli.clidriver`` and returns the calls it would make."""

from __future__ import annotations

import contextlib
import copy
import io
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from awscli.clidriver import create_clidriver
from botocore.exceptions import ClientError

# No credentials, configuration or instance metadata of the machine that runs the tests.
CLEAN_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "not-a-secret",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_PAGER": "",
}
_START = re.compile(r"(?<![\w./-])aws\s+[a-z0-9-]+\s+[a-z0-9-]+")
_STOPS = set(")|`;&>\n")
_PLACEHOLDER_OPEN = re.compile(r"<[A-Za-z_-]+$")


@dataclass
class Call:
    """One API call the CLI would send: service (``ecs``), operation (``UpdateService``), the
    validated parameters and the region it goes to."""

    service: str
    operation: str
    params: dict[str, Any]
    region: str | None = None


@dataclass
class Result:
    status: int | str
    calls: list[Call] = field(default_factory=list)
    stderr: str = ""

    @property
    def accepted(self) -> bool:
        """The CLI parsed the arguments and botocore validated the first call's parameters."""
        return bool(self.calls) and self.calls[-1].region is not None


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """``(first line number, line)`` with backslash-continued lines joined."""
    pending: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not pending:
            start = number
        if line.endswith("\\"):
            pending.append(line[:-1].strip() if pending else line[:-1].rstrip())
            continue
        pending.append(line.strip() if pending else line)
        yield start, " ".join(pending)
        pending = []
    if pending:
        yield start, " ".join(pending)


def commands(line: str) -> Iterator[str]:
    """Each ``aws <service> <operation> …`` in a line, up to where the shell would end it."""
    for match in _START.finditer(line):
        end, quote = match.start(), ""
        while end < len(line):
            char = line[end]
            if quote:
                quote = "" if char == quote else quote
            elif char in "\"'":
                quote = char
            elif char == ">" and _PLACEHOLDER_OPEN.search(line, match.start(), end):
                pass  # the end of a <placeholder> in prose, not a redirection
            elif char in _STOPS or (char == "#" and line[end - 1] == " "):
                break
            end += 1
        command = line[match.start() : end].strip()
        if line[end : end + 1] == ">":  # a redirection's file descriptor (``2>&1``) is the shell's, not an argument
            command = re.sub(r"\s\d$", "", command)
        yield command


def split(command: str) -> list[str]:
    """The argv the shell would pass (``aws`` dropped)."""
    return shlex.split(command)[1:]


class _StoppedError(Exception):
    """Raised before a request is signed or sent: the parameters passed validation."""


def run(argv: list[str], *, missing_stacks: bool = True) -> Result:
    """Run ``aws <argv>`` in process. Each API call is recorded after botocore validated it and is
    then stopped; with ``missing_stacks`` a ``DescribeStacks`` of ``cloudformation deploy`` answers
    "does not exist", so the deploy goes on to the ``CreateChangeSet`` it would send (validated too)."""
    driver, state = _driver()
    state.calls = []
    state.missing_stacks = missing_stacks and argv[:2] == ["cloudformation", "deploy"]
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()), _fresh_handlers(driver.session):
        try:
            status: int | str = driver.main(argv)
        except SystemExit as error:  # argparse refuses an argument
            status = f"exit {error.code}"
    return Result(status, state.calls, stderr.getvalue())


@contextlib.contextmanager
def _fresh_handlers(session: Any) -> Iterator[None]:
    """The session's event handlers as they were before the run, as in a new ``aws`` process: each
    ``main()`` emits session-initialized, whose handler registers one more URIArgumentHandler on
    load-cli-arg (awscli/paramfile.py), so a shared driver ran every earlier run's handlers for each
    argument of each later command (5 million calls, two thirds of the test's time, for 1,150
    commands). Handlers registered without a unique id during the run are unregistered after it."""
    added: list[tuple[str, Any]] = []
    register = session.register

    def recording(event_name: str, handler: Any, unique_id: Any = None, unique_id_uses_count: bool = False) -> Any:
        if unique_id is None:
            added.append((event_name, handler))
        return register(event_name, handler, unique_id, unique_id_uses_count)

    session.register = recording
    try:
        yield
    finally:
        del session.register
        for event_name, handler in reversed(added):
            session.unregister(event_name, handler)


@dataclass
class _State:
    calls: list[Call] = field(default_factory=list)
    missing_stacks: bool = False


_drivers: list[tuple[Any, _State]] = []


def _driver() -> tuple[Any, _State]:
    """One CLI driver for the process (building one loads every service's model: ~0.2 s), its
    handlers recording into a state each run resets."""
    if _drivers:
        return _drivers[0]
    _parse_each_template_once()
    driver, state = create_clidriver(), _State()

    def capture(params: dict[str, Any], model: Any, **_: Any) -> None:
        state.calls.append(Call(model.service_model.service_name, model.name, dict(params)))

    def stop(model: Any, request_signer: Any, **_: Any) -> None:
        state.calls[-1].region = request_signer._region_name
        if state.missing_stacks and model.name == "DescribeStacks":
            name = state.calls[-1].params.get("StackName")
            raise ClientError(
                {"Error": {"Code": "ValidationError", "Message": f"Stack with id {name} does not exist"}},
                "DescribeStacks",
            )
        raise _StoppedError

    driver.session.register("before-parameter-build", capture)
    driver.session.register("before-call", stop)
    _drivers.append((driver, state))
    return driver, state


def _parse_each_template_once() -> None:
    """``cloudformation deploy`` parses its template file (awscli's ``yaml_parse``: PyYAML's pure-Python
    loader, 0.1 s for a service stack) to read its parameters; deploy.sh and DEPLOY.md deploy the
    same files. The parse is a function of the text alone, so each text is parsed once here and
    the command gets its own copy of the result."""
    from awscli.customizations.cloudformation import deploy  # noqa: PLC0415 - only with the driver

    parse = deploy.yaml_parse
    parsed: dict[str, Any] = {}

    def once(text: str) -> Any:
        if text not in parsed:
            parsed[text] = parse(text)
        return copy.deepcopy(parsed[text])

    deploy.yaml_parse = once
