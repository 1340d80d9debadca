"""Template values as text, every intrinsic function one opaque ``${...}`` token: the normal form
the rule modules compare references in (two references to the same thing compare equal; a token
is never taken for a partial name, its value being unknown here).

Not a rule (cfn-lint loads only files not starting with ``_``): the rule modules load it by path,
since cfn-lint loads each of them standalone.
"""

from __future__ import annotations

import json
import re
from typing import Any

TOKEN = re.compile(r"\$\{[^}]*\}")


def canonical(value: Any) -> str | None:  # noqa: PLR0911 (one return per intrinsic form)
    """``value`` as text with each intrinsic as an opaque ``${...}`` token; None if not a string form."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict) or len(value) != 1:
        return None
    ((function, argument),) = value.items()
    if function == "Fn::Sub":
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], dict(argument[1]))
        if not isinstance(text, str):
            return None

        def token(match: re.Match[str]) -> str:
            name = match.group(0)[2:-1]
            if name.startswith(("!", "AWS::")):
                return match.group(0)
            if name in variables:
                inner = canonical(variables[name])
                return inner if inner is not None else opaque(variables[name])
            if "." in name:
                resource, attribute = name.split(".", 1)
                return opaque({"Fn::GetAtt": [resource, attribute]})
            return opaque({"Ref": name})

        return TOKEN.sub(token, text)
    if function == "Ref" and isinstance(argument, str) and argument.startswith("AWS::"):
        return "${%s}" % argument
    if function == "Fn::GetAtt" and isinstance(argument, str):
        return opaque({"Fn::GetAtt": argument.split(".", 1)})
    return opaque(value)


def opaque(value: Any) -> str:
    # Braces inside would end the token early: the JSON's own braces become parentheses.
    text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return "${%s}" % text.replace("{", "(").replace("}", ")")
