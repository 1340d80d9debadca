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
import functools
import io
import logging
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

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
    with (
        contextlib.redirect_stderr(stderr),
        contextlib.redirect_stdout(io.StringIO()),
        _fresh_handlers(driver.session),
        _fresh_log_handlers(),
    ):
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


@contextlib.contextmanager
def _fresh_log_handlers() -> Iterator[None]:
    """The ``awscli`` logger's handlers as they were before the run, as in a new ``aws`` process:
    each ``main()`` adds one more StreamHandler to it (botocore's ``Session.set_stream_logger``,
    called by awscli's ``_set_logging``), so after 1,200 commands each of awscli's debug records
    went through 1,200 handlers (7.6 of the test's 65 s of CPU). Nor do its records go up to the
    root logger during the run: in the ``aws`` process the root has no handler, here pytest's log
    capture kept and formatted each of awscli's debug records, the traceback of the call this
    module stops included (a sixth of the test's CPU)."""
    logger = logging.getLogger("awscli")
    before, propagate = list(logger.handlers), logger.propagate
    logger.propagate = False
    try:
        yield
    finally:
        logger.propagate = propagate
        for handler in logger.handlers[:]:
            if handler not in before:
                logger.removeHandler(handler)


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
    # awscli and botocore imported here, with the driver: a test worker that runs no command (the
    # tests using this module are one xdist group) does not import them when it collects (0.2 s)
    from awscli.clidriver import create_clidriver  # noqa: PLC0415
    from botocore.exceptions import ClientError  # noqa: PLC0415

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
    _reuse_clients(driver.session)
    _one_top_level_parser(driver)
    _drivers.append((driver, state))
    return driver, state


def _one_top_level_parser(driver: Any) -> None:
    """The driver's top-level parser (``aws [options] <command>``) made once, not in each ``main()``:
    ``aws`` makes it in each process from the driver's command table and top-level options, which
    the driver itself keeps (``_get_command_table``, ``_get_argument_table``), so each run's is
    the same; argparse keeps nothing of one parse for the next (a new namespace each time). Its
    choices are the command table's keys, read at each parse. Each run still gets its own ``help``
    command, as ``_create_parser`` puts one in the table. 0.8 s of CPU for 1,200 commands (a fifth
    of the test's); tests/test_aws_commands.py holds the kept parser to a new one's parse."""
    made: list[Any] = []

    def once(command_table: dict[str, Any]) -> Any:
        if not made:
            made.append(type(driver)._create_parser(driver, command_table))
        else:
            command_table["help"] = driver.create_help_command()
        return made[0]

    driver._create_parser = once


def _reuse_clients(session: Any) -> None:
    """One botocore client per service, region and endpoint for all runs, as a new ``aws`` process
    would create it: creating one copies the session's event handlers (~900) and builds the client
    class with a method per operation (12 ms, 60 % of the test's time for 1,200 commands). A client
    is a function of the session (its configuration and credentials, which runs do not change), the
    environment's AWS_ variables (the default region, for a command without --region) and the
    arguments: one is reused only where all are the same. Its handlers are the session's at
    creation, and what a run adds to the session (argument-table, ``calling-command``,
    ``load-cli-arg`` and ``operation-args-parsed`` handlers, removed after the run by
    ``_fresh_handlers``) is on the CLI's events, never a client's. Each API call is still serialized
    and validated by the client on its own. A client created with a ``config`` (``cloudformation
    deploy --s3-bucket``: an S3 client signing with SigV4) is new each time, as the CLI makes it."""
    create = session.create_client
    clients: dict[tuple[Any, ...], Any] = {}

    def reused(service_name: str, *args: Any, **kwargs: Any) -> Any:
        if args or kwargs.get("config") is not None:
            return create(service_name, *args, **kwargs)
        # A command without --region gets the session's default region, read from the environment
        # (AWS_DEFAULT_REGION): that, and every AWS_ variable, is part of what the client is made of.
        environment = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
        key = (service_name, *sorted(kwargs.items()), session.get_config_variable("region"), environment)
        if key not in clients:
            clients[key] = create(service_name, **kwargs)
        return clients[key]

    session.create_client = reused


def _parse_each_template_once() -> None:
    """``cloudformation deploy`` parses its template file (awscli's ``yaml_parse``: PyYAML's pure-Python
    loader, 0.1 s for a service stack) to read its parameters; deploy.sh and DEPLOY.md deploy the
    same files. The parse is a function of the text alone, so each text is parsed once here and
    the command gets its own copy of the result."""
    from awscli.customizations.cloudformation import deploy  # noqa: PLC0415 - only with the driver

    parsed: dict[str, Any] = {}

    def once(text: str) -> Any:
        if text not in parsed:
            parsed[text] = yaml_parse(text)
        return copy.deepcopy(parsed[text])

    deploy.yaml_parse = once


def yaml_parse(text: str) -> Any:
    """awscli's ``yamlhelper.yaml_parse`` (JSON first, then YAML with CloudFormation's short-form
    intrinsics) with PyYAML's libyaml parser in place of its pure-Python one: the same constructors
    (awscli's ``_dict_constructor`` and ``intrinsics_multi_constructor``) on the same resolver, so
    the same data (tests/test_aws_commands.py compares both on a shipped template), at a tenth of
    the CPU (the pure-Python parse of the templates deploy.sh and DEPLOY.md name took 14 s)."""
    from awscli.customizations.cloudformation import yamlhelper  # noqa: PLC0415 - only with the driver

    try:
        return yamlhelper.json.loads(text, object_pairs_hook=yamlhelper.OrderedDict)
    except ValueError:
        return yaml.load(text, _libyaml_loader())  # a safe loader: CSafeLoader's subclass


@functools.cache
def _libyaml_loader() -> type:
    from awscli.customizations.cloudformation import yamlhelper  # noqa: PLC0415 - only with the driver

    class Loader(yaml.CSafeLoader):
        """awscli's SafeLoaderWrapper on libyaml."""

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, yamlhelper._dict_constructor)
    Loader.add_multi_constructor("!", yamlhelper.intrinsics_multi_constructor)
    return Loader
