"""checkov's command line (what ``.venv/bin/checkov`` runs), with one repair for speed: the JSONPath
parser checkov's graph uses is built once per process instead of once per path it parses.

``python -m infra_templates.checkov_cli ARGS...`` takes checkov's own arguments and exits as it does.

Why: checkov renders the CloudFormation graph's ``Fn::Sub`` values through bc-jsonpath-ng, whose
``JsonPathParser.parse_token_stream`` calls ``ply.yacc.yacc(..., write_tables=0)`` on every parse
("we regenerate the parse table every time; it doesn't actually take that long!"): ~55 ms of LALR
table building per path. On this project's output that was 9.7 of 11.8 s of checkov's CPU time for
the delivery-infrastructure template alone (cProfile, 2026-11-30: 175 parses). The grammar is fixed
per parser class, and its rule functions keep no state in the parser object, so one table per
(class, start symbol) gives the same parser: same findings (tests/test_checks.py compares both).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
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


def main() -> int:
    """checkov's console script, after ``memoize_jsonpath_tables()``: its exit status."""
    memoize_jsonpath_tables()
    from checkov.main import Checkov  # noqa: PLC0415 - after the repair, as checkov's script imports it

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=SyntaxWarning)
        return int(Checkov().run() or 0)


if __name__ == "__main__":
    sys.exit(main())
