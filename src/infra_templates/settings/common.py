"""Settings shared by every concern: the errors, the strict base model, field types and checks."""

import contextlib
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, TypeVar, cast

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
)
from pydantic_core import InitErrorDetails

from infra_templates.catalog import REGIONS

DEFAULTS_FILE = "defaults.yaml"
T = TypeVar("T")

# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip
RESERVED_TAG_KEYS = ("Project", "Environment", "Layer", "ManagedBy")
RESERVED_ENVIRONMENT_NAMES = ("project", "defaults", "delivery")
# AWS's tagging limits ("Tag restrictions": AWS Batch user guide, ECS API Tag): at most 50 tags per
# resource, keys 1-128 characters, values at most 256. The generator adds its own four (standard_tags).
MAX_TAGS_PER_RESOURCE = 50
MAX_TAG_VALUE = 256


class FieldValueError(ValueError):
    """A validator's complaint about a field below the one it validates.

    ``path`` is relative to the model the validator belongs to, so a cross-field rule can point at
    the exact list item it refuses instead of at the whole model.
    """

    def __init__(self, path: tuple[str | int, ...], message: str, value: object = None) -> None:
        super().__init__(message)
        self.path = path
        self.value = value


class ManyFieldsError(ValueError):
    """Several ManyFieldsError from one cross-field rule, so the user sees all of them at once."""

    def __init__(self, errors: list[FieldValueError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors


def check_each(items: Iterable[T], check: Callable[[T], object]) -> None:
    """``check`` of every item, each FieldValueError it raises kept: all of them raised together
    (one run reports every bad item of a list or mapping, not the first only)."""
    problems: list[FieldValueError] = []
    for item in items:
        try:
            check(item)
        except ManyFieldsError as error:
            problems.extend(error.errors)
        except FieldValueError as error:
            problems.append(error)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ManyFieldsError(problems)


def failed_locations(error: ValidationError) -> list[tuple[str | int, ...]]:
    """Where each of ``error``'s problems is, relative to the model validated: pydantic's location,
    extended by the path of a FieldValueError a validator raised there (a service's rule points
    below the service)."""
    found: list[tuple[str | int, ...]] = []
    for detail in error.errors():
        loc = tuple(detail["loc"])
        cause = (detail.get("ctx") or {}).get("error")
        causes = cause.errors if isinstance(cause, ManyFieldsError) else [cause]
        paths = [c.path for c in causes if isinstance(c, FieldValueError)]
        found += [loc + path for path in paths] if paths and len(paths) == len(causes) else [loc]
    return found


def with_problems(
    error: ValidationError, loc: tuple[str | int, ...], problems: Sequence[FieldValueError], data: Any = None
) -> ValidationError:
    """``error`` with ``problems`` (each at ``loc`` + its own path) added: what a wrap validator
    raises when the rules it runs on the values that passed their own checks find more, so that
    one run reports both (pydantic gives the raised error's locations the model's place). ``data``:
    the input at ``loc``, where a message finds the value a problem's path points at."""
    details: list[InitErrorDetails] = [cast(InitErrorDetails, e) for e in error.errors()]
    details += [
        InitErrorDetails(type="value_error", loc=loc, input=data, ctx={"error": problem}) for problem in problems
    ]
    return ValidationError.from_exception_data(error.title, details)


class SettingsError(Exception):
    """One or more problems in the environment files; ``str()`` is ready to print."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


# --- field types ------------------------------------------------------------------------------


def _cidr(value: object) -> ipaddress.IPv4Network:
    if isinstance(value, ipaddress.IPv4Network):
        return value
    if not isinstance(value, str):
        raise ValueError("must be an IPv4 CIDR block written as a string, such as '10.0.0.0/16'")
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as error:
        hint = ""
        with contextlib.suppress(ValueError):
            hint = f"; did you mean '{ipaddress.IPv4Network(value, strict=False)}'?"
        raise ValueError(f"is not a valid IPv4 CIDR block ({error}){hint}") from None


def quoted_string(value: object) -> object:
    """Refuse a YAML number where a string is meant, with the fix (quote it) in the message."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"must be a string: quote it in YAML (e.g. '012345678901'){_octal_hint(value)}")
    return value


def _octal_hint(value: object) -> str:
    """YAML 1.1 (PyYAML) reads unquoted digits with a leading 0 as an octal number: an account ID
    ``011111111111`` arrives as 1227133513, which the refusal shows. Where the value is the octal
    reading of 12 digits starting with 0 (an account ID's length), what was most likely typed:
    ``"; if you typed 011111111111, YAML read it as the octal number 1227133513"``."""
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        return ""
    typed = "0" + format(value, "o")
    return f"; if you typed {typed}, YAML read it as the octal number {value}" if len(typed) == 12 else ""


Cidr = Annotated[ipaddress.IPv4Network, BeforeValidator(_cidr)]


def no_items() -> list[Any]:
    """``[]``: the ``default_factory`` of a list field. Not ``list`` itself: pydantic asks
    ``inspect.signature`` whether a factory takes the validated data, and a builtin's signature is
    parsed from its text with the tokenize module, whose patterns its first use compiles (2 ms of
    every run's CPU); a Python function's signature is read as is."""
    return []


class Strict(BaseModel):
    """Base of every settings model: unknown keys refused, no type coercion, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def mapping_text(model: type[BaseModel]) -> str:
    """What a setting of ``model`` takes, for the line that says it is missing: ``a mapping of min,
    max, and optionally cpu_target, requests_per_target``."""
    required = [k for k, f in model.model_fields.items() if f.is_required()]
    optional = [k for k, f in model.model_fields.items() if not f.is_required()]
    if not required:
        return f"a mapping of any of {', '.join(optional)}"
    return f"a mapping of {', '.join(required)}" + (f", and optionally {', '.join(optional)}" if optional else "")


def check_retention(days: int) -> int:
    if days not in LOG_RETENTION_DAYS:
        allowed = ", ".join(str(d) for d in LOG_RETENTION_DAYS)
        raise ValueError(f"is not a retention CloudWatch Logs accepts; use one of {allowed}")
    return days


ENVIRONMENT_NAME = r"^[a-z][a-z0-9]{0,11}$"
HOST_NAME = r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"

# What a value refused by a Field's ``pattern`` should be, in words: a refusal says this instead of
# the regular expression (tests/test_settings_messages.py checks each pattern is one of a model's).
# A pattern not here is shown as it is, where it is the clearest statement (an ARN's shape) or the
# setting's description, which the refusal adds, says it in words (name, project).
PATTERN_WORDS = {
    HOST_NAME.replace("(\\*\\.)?", ""): "a host name in lower case, such as 'origin.example.com': labels of "
    "letters, digits and hyphens (not at either end of a label), separated by dots, ending in a top-level domain "
    "of letters; no '*', no '_', no trailing dot",
    r"^/[A-Za-z0-9_\-.~/?=&%]{0,1023}$": "a path the load balancer requests, starting with '/', at most 1024 "
    "characters: letters, digits and _ - . ~ / ? = & %",
    r"^/[A-Za-z0-9_\-.~/]*$": "a path starting with '/', of letters, digits and _ - . ~ / (no query string)",
    r"^Z[A-Z0-9]{1,31}$": "a Route 53 hosted zone ID: 'Z' and up to 31 upper-case letters and digits, such as "
    "Z0123456789ABCDEFGHIJ",
    r"^[0-9]{12}$": "an AWS account ID: 12 digits, quoted ('012345678901')",
    r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$": "a service name: lower-case letters, digits and hyphens, starting with a "
    "letter and not ending with a hyphen, 2 to 32 characters",
    r"^[0-9]{1,10}(:[0-9]{1,10})?$": "a numeric user ID, optionally with a group ID ('1000' or '1000:1000')",
    r"^[a-z][a-z0-9_]{0,62}$": "a database name: lower-case letters, digits and underscores, starting with a "
    "letter, at most 63",
    r"^[a-z][a-z0-9_]{0,15}$": "a database user name: lower-case letters, digits and underscores, starting with "
    "a letter, at most 16",
    r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$": "a time range hh:mm-hh:mm in 24-hour UTC, "
    "such as 03:00-03:30",
    r"^(mon|tue|wed|thu|fri|sat|sun):[0-2][0-9]:[0-5][0-9]-(mon|tue|wed|thu|fri|sat|sun):[0-2][0-9]:[0-5][0-9]$": (
        "a weekly range ddd:hh:mm-ddd:hh:mm in 24-hour UTC, the day in lower case (mon to sun), such as "
        "sun:04:00-sun:04:30"
    ),
    r"^[a-z][a-z0-9-]{0,62}$": "a container name: lower-case letters, digits and hyphens, starting with a letter, "
    "at most 63",
}


def lower_case_hint(value: str, pattern: str) -> str:
    """``"; write it in lower case: 'x'"`` when ``value`` fails ``pattern`` only for the capitals of
    its host name (``QA.shop.example.com``, or an e-mail address's domain: its local part keeps its
    case), else ``""``."""
    local, at, domain = value.rpartition("@")
    lowered = f"{local}{at}{domain.lower()}"
    return f"; write it in lower case: {lowered!r}" if lowered != value and re.fullmatch(pattern, lowered) else ""


def check_region(region: str) -> str:
    if region not in REGIONS:
        raise ValueError(f"is not an AWS region{did_you_mean(region, REGIONS)}; use one of {', '.join(REGIONS)}")
    return region


def did_you_mean(given: object, valid: Sequence[object]) -> str:
    """``"; did you mean 'x'?"`` for the valid choice closest to ``given`` (difflib, ratio 0.6 or
    more, ignoring case and look-alike characters: ``eu-w\u0435st-1`` suggests ``eu-west-1``), else ``""``."""
    meant = closest(given, valid)
    return "" if meant is None else f"; did you mean {meant!r}?"


def closest(given: object, valid: Sequence[object]) -> object | None:
    """The valid choice :func:`did_you_mean` suggests for ``given``, or None (none close, or ``given`` itself)."""
    text = str(given)
    folded = {_fold(str(v)): v for v in valid}
    import difflib  # noqa: PLC0415 - only for a mistyped value: 5 ms a build need not import

    close = difflib.get_close_matches(_fold(text), list(folded), n=1, cutoff=0.6)
    if not close or str(folded[close[0]]) == text:
        return None
    return folded[close[0]]


def _fold(text: str) -> str:
    """Lower case, with each character replaced by its ASCII look-alike where NFKD gives one, and
    Cyrillic/Greek letters that look Latin mapped to them (so a homoglyph is close to the real name)."""
    ascii_text = unicodedata.normalize("NFKD", text).translate(_HOMOGLYPHS)
    return ascii_text.lower()


_HOMOGLYPHS = str.maketrans(
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0458\u0455\u0410\u0412\u0415\u041a\u041c\u041d"
    "\u041e\u0420\u0421\u0422\u0425\u03bf\u039f\u0391\u0392\u0395",
    "aeopcyxijsABEKMHOPCTXoOABE",
)


def construct_mapping_once(
    self: yaml.constructor.SafeConstructor, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    """A mapping, refusing a key given twice in it (PyYAML keeps the last silently): a PyYAML
    loader's ``construct_mapping``, for the settings' loaders and the add-ons'."""
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = self.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice in one mapping", key_node.start_mark
            )
        seen.add(key)
    mapping: dict[Any, Any] = yaml.constructor.SafeConstructor.construct_mapping(self, node, deep=deep)
    return mapping
