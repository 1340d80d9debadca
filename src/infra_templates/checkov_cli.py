"""checkov's command line (what ``.venv/bin/checkov`` runs), with three repairs for speed that change
none of its findings (tests/test_checks.py compares them with checkov's own script):

1. the JSONPath parser checkov's graph uses is built once per process instead of once per path;
2. the IAM action data cloudsplaining's checks look up is kept for the whole run, not 1,024 entries;
3. the files are parsed in checkov's own process, not in a pool of forked ones.

``python -m infra_templates.checkov_cli ARGS...`` takes checkov's own arguments and exits as it does;
``python -m infra_templates.checkov_cli --serve`` is a fork server for many runs (see ``serve``).

1. checkov renders the CloudFormation graph's ``Fn::Sub`` values through bc-jsonpath-ng, whose
``JsonPathParser.parse_token_stream`` calls ``ply.yacc.yacc(..., write_tables=0)`` on every parse
("we regenerate the parse table every time; it doesn't actually take that long!"): ~55 ms of LALR
table building per path. On this project's output that was 9.7 of 11.8 s of checkov's CPU time for
the delivery-infrastructure template alone (cProfile, 2026-11-30: 175 parses). The grammar is fixed
per parser class, and its rule functions keep no state in the parser object, so one table per
(class, start symbol) gives the same parser.

2. checkov's IAM checks (``BaseCloudsplainingIAMCheck``: CKV_AWS_107 to 111 and others) build
cloudsplaining's ``StatementDetail`` for every statement, whose ``remove_wildcard_only_actions``
looks up each action of the statement's expanded action list with policy_sentry's
``get_action_data`` (``functools.lru_cache(maxsize=1024)``). A statement of ``s3:*``, or a Deny of
``*``, expands to hundreds or thousands of actions, more than the cache holds, so nearly every lookup
missed: 895,000 lookups, 8.9 of 24 s of checkov's CPU on this project's output (cProfile,
2026-11-30; 797 statements, 96 distinct action lists). The lookup reads policy_sentry's fixed IAM
data, so an unbounded cache returns what a miss computes, and an action list seen before gets (a
copy of) the answer computed for it.

3. checkov parses the templates in a pool of forked processes (``CHECKOV_PARALLELIZATION_TYPE``,
default ``fork``) and pickles each parsed template back to the parent (1.9 s of loads for 88
templates). The gate gives checkov one core and cfn-lint the other, so the pool only adds that
cost; ``none`` is checkov's own sequential mode. A caller's own setting of the variable is kept.
Together: checkov on the shipped output 20.2 s CPU before 2 and 3, 13.4 s after (same report).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
import warnings
from collections.abc import Callable
from contextlib import suppress
from typing import Any


def memoize_jsonpath_tables() -> None:
    """Make ``ply.yacc.yacc`` return one parser per bc-jsonpath-ng parser class and start symbol
    (any other caller of ply gets ply's own behaviour)."""
    import ply.yacc  # type: ignore[import-untyped]  # noqa: PLC0415 - checkov's dependency
    from bc_jsonpath_ng.parser import JsonPathParser  # noqa: PLC0415

    build: Callable[..., Any] = ply.yacc.yacc
    parsers: dict[tuple[Any, ...], Any] = {}

    def yacc(*args: Any, **kwargs: Any) -> Any:
        module = kwargs.get("module")
        if args or not isinstance(module, JsonPathParser):
            return build(*args, **kwargs)
        key = (type(module), kwargs.get("start"), kwargs.get("tabmodule"), bool(kwargs.get("debug")))
        if key not in parsers:
            parsers[key] = build(*args, **kwargs)
        return parsers[key]

    ply.yacc.yacc = yacc


def memoize_action_data() -> None:
    """Give cloudsplaining's wildcard-only filter an unbounded cache of policy_sentry's action data,
    and remember its answer per action list (repair 2 above)."""
    from cloudsplaining.scan import statement_detail  # noqa: PLC0415 - checkov's dependency
    from cloudsplaining.shared import utils  # noqa: PLC0415
    from policy_sentry.querying import actions  # noqa: PLC0415

    utils.get_action_data = functools.cache(actions.get_action_data.__wrapped__)
    remove = utils.remove_wildcard_only_actions
    answers: dict[tuple[str, ...], list[str]] = {}

    def remove_wildcard_only_actions(actions_list: list[str]) -> list[str]:
        try:
            key = tuple(actions_list)
            hash(key)
        except TypeError:  # what cloudsplaining's own guard handles (an unhashable action)
            return remove(actions_list)
        if key not in answers:
            answers[key] = remove(actions_list)
        return list(answers[key])

    statement_detail.remove_wildcard_only_actions = remove_wildcard_only_actions


_prepared: list[Any] = []  # checkov's CLI class, once the repairs are made (a process makes them once)


def prepare() -> Any:
    """Make the repairs above (once per process) and import checkov's CLI: its ``Checkov`` class."""
    if not _prepared:
        memoize_jsonpath_tables()
        memoize_action_data()
        from checkov.main import Checkov  # noqa: PLC0415 - after the repairs, as checkov's script imports it

        _prepared.append(Checkov)
    return _prepared[0]


def main(argv: list[str] | None = None) -> int:
    """checkov's console script on ``argv`` (default: this process's arguments), after the repairs
    above: its exit status. (``Checkov``'s own default is the arguments of the process that imported
    it, which in a fork server are the server's.)"""
    os.environ.setdefault("CHECKOV_PARALLELIZATION_TYPE", "none")
    checkov = prepare()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=SyntaxWarning)
        return int(checkov(argv=sys.argv[1:] if argv is None else argv).run() or 0)


SERVE = "--serve"


def serve() -> int:
    """A fork server for many checkov runs in one session (the tests make a dozen): checkov
    imported once (1.8 s of CPU, most of a small run), then each request a forked copy of this
    process running ``main()`` as a new ``python -m infra_templates.checkov_cli ARGS`` would.

    Requests on stdin, one JSON object a line: ``{"argv": [...], "env": {...}, "cwd": path,
    "stdout": path, "stderr": path}``; the child takes that environment and folder, writes its
    output to those files and exits with ``main()``'s status; the answer on stdout is a line
    ``{"exit": status}`` (a negative status: killed by that signal). Ends at the end of stdin.
    The server's own environment is the one checkov's modules read as they are imported, so a
    caller keeps one server per environment (``checks._checkov_server``)."""
    prepare()
    for line in sys.stdin:
        request = json.loads(line)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            _run_request(request)
        _, status = os.waitpid(pid, 0)
        sys.stdout.write(json.dumps({"exit": os.waitstatus_to_exitcode(status)}) + "\n")
        sys.stdout.flush()
    return 0


def _run_request(request: dict[str, Any]) -> None:
    status = 70  # EX_SOFTWARE: the request itself could not be run
    try:
        os.environ.clear()
        os.environ.update(request["env"])
        os.chdir(request["cwd"])
        for stream, path in ((1, request["stdout"]), (2, request["stderr"])):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(descriptor, stream)
            os.close(descriptor)
        sys.argv = ["checkov", *request["argv"]]
        status = main(request["argv"])
    except SystemExit as leaving:
        code = leaving.code
        status = code if isinstance(code, int) else (0 if code is None else 1)
    except BaseException:  # reported on the request's stderr, as a process would report it
        traceback.print_exc()
    finally:
        with suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)


if __name__ == "__main__":
    sys.exit(serve() if sys.argv[1:] == [SERVE] else main())
