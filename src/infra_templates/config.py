"""Settings: environment files read, merged and validated into frozen pydantic models.

``load_environment(name, root)`` reads ``environments/defaults.yaml`` and
``environments/<name>.yaml``, deep-merges them (mappings merge; lists and scalars replace) and
validates the result. Any problem raises :class:`SettingsError`, whose lines each name the file the
offending value came from, the field path, the value and what would be valid.
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from infra_templates.regions import REGIONS, zones_of

DEFAULTS_FILE = "defaults.yaml"

# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip
RESERVED_TAG_KEYS = ("Project", "Environment", "Layer", "ManagedBy")
INTERFACE_ENDPOINTS = ("ecr.api", "ecr.dkr", "logs", "secretsmanager")
MAX_ZONES = 3


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


def _quoted_string(value: object) -> object:
    """Refuse a YAML number where a string is meant, with the fix (quote it) in the message."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("must be a string: quote it in YAML (e.g. '012345678901')")
    return value


Cidr = Annotated[ipaddress.IPv4Network, BeforeValidator(_cidr)]


class Strict(BaseModel):
    """Base of every settings model: unknown keys refused, no type coercion, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# --- models -----------------------------------------------------------------------------------


class FlowLogs(Strict):
    retention_days: int = Field(description="CloudWatch Logs retention of the VPC flow logs.")
    traffic_type: Literal["ALL", "ACCEPT", "REJECT"] = "ALL"

    @field_validator("retention_days")
    @classmethod
    def _retention(cls, days: int) -> int:
        return _check_retention(days)


def _check_retention(days: int) -> int:
    if days not in LOG_RETENTION_DAYS:
        allowed = ", ".join(str(d) for d in LOG_RETENTION_DAYS)
        raise ValueError(f"is not a retention CloudWatch Logs accepts; use one of {allowed}")
    return days


class Subnets(Strict):
    """One CIDR per availability zone, in the order of ``availability_zones``, for each tier."""

    public: list[Cidr]
    private: list[Cidr]
    data: list[Cidr]


TIERS = ("public", "private", "data")


class Network(Strict):
    cidr: Cidr
    availability_zones: int = Field(
        ge=2,
        le=MAX_ZONES,
        description="How many zones to spread over: the region's first N (Fn::GetAZs), 2 or 3.",
    )
    subnets: Subnets
    nat_gateways: Literal["per-zone", "single"]
    map_public_ip_on_launch: bool = False
    flow_logs: FlowLogs
    interface_endpoints: list[Literal["ecr.api", "ecr.dkr", "logs", "secretsmanager"]] = Field(
        description="Interface endpoints to create in every zone; an empty list creates none."
    )

    @field_validator("cidr")
    @classmethod
    def _vpc_size(cls, cidr: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if not 16 <= cidr.prefixlen <= 28:
            raise ValueError("a VPC's CIDR block must be between /16 and /28")
        return cidr

    @field_validator("interface_endpoints")
    @classmethod
    def _distinct_endpoints(cls, endpoints: list[str]) -> list[str]:
        if len(set(endpoints)) != len(endpoints):
            raise ValueError("lists an endpoint twice")
        return endpoints

    @model_validator(mode="after")
    def _subnets_fit(self) -> Network:
        zones = self.availability_zones
        problems: list[FieldValueError] = []
        placed: list[tuple[str, int, ipaddress.IPv4Network]] = []
        for tier in TIERS:
            cidrs: list[ipaddress.IPv4Network] = getattr(self.subnets, tier)
            if len(cidrs) != zones:
                problems.append(
                    FieldValueError(
                        ("subnets", tier),
                        f"has {len(cidrs)} CIDR blocks but availability_zones is {zones}; "
                        "give one per zone, in zone order",
                    )
                )
            for index, cidr in enumerate(cidrs):
                where = ("subnets", tier, index)
                if not cidr.subnet_of(self.cidr):
                    problems.append(
                        FieldValueError(
                            where, f"is outside the VPC's CIDR block {self.cidr}; pick a range inside it", str(cidr)
                        )
                    )
                elif not 16 <= cidr.prefixlen <= 28:
                    problems.append(
                        FieldValueError(where, "a subnet's CIDR block must be between /16 and /28", str(cidr))
                    )
                problems.extend(
                    FieldValueError(
                        where,
                        f"overlaps network.subnets.{other_tier}[{other_index}] ({other}); "
                        "give every subnet its own range",
                        str(cidr),
                    )
                    for other_tier, other_index, other in placed
                    if cidr.overlaps(other)
                )
                placed.append((tier, index, cidr))
        if problems:
            raise ManyFieldsError(problems)
        return self


class Environment(Strict):
    """One environment: what ``environments/defaults.yaml`` + ``environments/<name>.yaml`` say."""

    name: str = Field(
        pattern=r"^[a-z][a-z0-9]{0,11}$",
        description="The file name without .yaml: lower-case letters and digits, starting with a letter, "
        "at most 12 (it becomes part of every stack name)",
    )
    project: str = Field(
        pattern=r"^[a-z][a-z0-9-]{0,19}$",
        description="Lower-case letters, digits and hyphens, starting with a letter, at most 20.",
    )
    account_id: Annotated[str, BeforeValidator(_quoted_string)] = Field(pattern=r"^[0-9]{12}$")
    region: str
    production: bool = Field(description="Production-grade safety nets (deletion protection...).")
    tags: dict[str, str] = Field(default_factory=dict)
    network: Network

    @field_validator("project")
    @classmethod
    def _no_double_hyphen(cls, project: str) -> str:
        if project.endswith("-") or "--" in project:
            raise ValueError("must not end with a hyphen or contain '--' (it is joined to names with '-')")
        return project

    @field_validator("region")
    @classmethod
    def _known_region(cls, region: str) -> str:
        if region not in REGIONS:
            raise ValueError(f"is not an AWS region; use one of {', '.join(REGIONS)}")
        return region

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: dict[str, str]) -> dict[str, str]:
        for key in tags:
            if key in RESERVED_TAG_KEYS:
                raise FieldValueError((key,), f"is set by the generator; use another key than {RESERVED_TAG_KEYS}")
            if key.lower().startswith("aws:") or not 1 <= len(key) <= 128:
                raise FieldValueError((key,), "tag keys are 1-128 characters and must not start with 'aws:'")
        return tags

    @model_validator(mode="after")
    def _zones_in_region(self) -> Environment:
        known = len(zones_of(self.region))
        if self.network.availability_zones > known:
            raise FieldValueError(
                ("network", "availability_zones"),
                f"{self.region} has {known} availability zones; use at most {known}",
                self.network.availability_zones,
            )
        return self


# --- loading ----------------------------------------------------------------------------------


def available_environments(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml") if p.name != DEFAULTS_FILE)


def load_environment(name: str, folder: Path) -> Environment:
    """Read ``folder/defaults.yaml`` and ``folder/<name>.yaml``, merge and validate them.

    Raises SettingsError whose lines name the file, the field, the value and what would be valid.
    """
    env_path = folder / f"{name}.yaml"
    defaults_path = folder / DEFAULTS_FILE
    if not env_path.is_file():
        known = ", ".join(available_environments(folder)) or "none"
        raise SettingsError([f"{_show(env_path)}: no such environment file; environments here: {known}"])
    defaults = _read_mapping(defaults_path) if defaults_path.is_file() else {}
    own = _read_mapping(env_path)
    if "name" in own:
        raise SettingsError([f"{_show(env_path)}: name: is taken from the file name; remove the key"])
    merged = deep_merge(defaults, own)
    merged["name"] = name
    try:
        return Environment.model_validate(merged)
    except ValidationError as error:
        sources = {"own": (env_path, own), "defaults": (defaults_path, defaults)}
        lines = {line for e in error.errors() for line in _describe(e, sources)}
        raise SettingsError(sorted(lines)) from None


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else in ``override`` replaces what ``base`` had."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise SettingsError([f"{_show(path)}: is not valid YAML{where}: {problem}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SettingsError([f"{_show(path)}: must be a mapping of settings, not {type(data).__name__}"])
    bad = [key for key in data if not isinstance(key, str)]
    if bad:
        raise SettingsError([f"{_show(path)}: key {bad[0]!r}: keys must be strings"])
    return data


def _show(path: Path) -> str:
    """The path as the user would type it: relative to the working folder when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _describe(error: Any, sources: dict[str, tuple[Path, dict[str, Any]]]) -> list[str]:
    """One line per problem: ``file: field.path = value: what is wrong and what would be valid``."""
    loc: tuple[str | int, ...] = tuple(error["loc"])
    value = error.get("input")
    cause = (error.get("ctx") or {}).get("error")
    causes = cause.errors if isinstance(cause, ManyFieldsError) else [cause]
    if all(isinstance(c, FieldValueError) for c in causes):
        return [
            _line(loc + c.path, c.value if c.value is not None else _lookup(value, c.path), str(c), sources)
            for c in causes
            if isinstance(c, FieldValueError)
        ]
    if error["type"] == "extra_forbidden":
        allowed = _fields_at(Environment, loc[:-1])
        message = "is not a known setting" + (f"; valid keys here: {', '.join(allowed)}" if allowed else "")
    elif error["type"] == "missing":
        message = "is required but not set in this file or in defaults.yaml"
        value = None
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        message = message[0].lower() + message[1:] if message else message
        hint = _description_at(Environment, loc)
        if hint and error["type"] != "value_error":
            message += f" ({hint})"
    return [_line(loc, value, message, sources)]


def _line(
    loc: tuple[str | int, ...], value: object, message: str, sources: dict[str, tuple[Path, dict[str, Any]]]
) -> str:
    shown = "" if value is None or isinstance(value, dict | list) else f" = {value!r}"
    return f"{_show(_origin(loc, sources))}: {_dotted(loc)}{shown}: {message}"


def _origin(loc: tuple[str | int, ...], sources: dict[str, tuple[Path, dict[str, Any]]]) -> Path:
    """The file that set the value at ``loc`` (or the deepest part of it that exists)."""
    own_path, own = sources["own"]
    defaults_path, defaults = sources["defaults"]
    for depth in range(len(loc), 0, -1):
        if _has(own, loc[:depth]):
            return own_path
        if _has(defaults, loc[:depth]):
            return defaults_path
    return own_path


def _has(data: object, path: tuple[str | int, ...]) -> bool:
    for part in path:
        if isinstance(data, dict) and isinstance(part, str) and part in data:
            data = data[part]
            continue
        if isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
            continue
        return False
    return True


def _lookup(data: object, path: tuple[str | int, ...]) -> object:
    for part in path:
        if isinstance(data, BaseModel) and isinstance(part, str):
            data = getattr(data, part, None)
        elif isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return None
    return str(data) if isinstance(data, ipaddress.IPv4Network) else data


def _dotted(loc: tuple[str | int, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _description_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> str | None:
    """The Field description of the setting at ``loc``, used as a hint in messages."""
    fields = [part for part in loc if isinstance(part, str)]
    if not fields:
        return None
    parent: Any = model
    for part in fields[:-1]:
        if not (isinstance(parent, type) and issubclass(parent, BaseModel)) or part not in parent.model_fields:
            return None
        parent = _model_in(parent.model_fields[part].annotation)
    if isinstance(parent, type) and issubclass(parent, BaseModel) and fields[-1] in parent.model_fields:
        return parent.model_fields[fields[-1]].description
    return None


def _fields_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The keys a model accepts at ``loc`` (used to suggest what an unknown key should be)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return []
        current = _model_in(current.model_fields[part].annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(k for k in current.model_fields if k != "name")
    return []


def _model_in(annotation: Any) -> Any:
    """The BaseModel inside ``list[Model]`` / ``Model | None`` annotations, else the annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation
