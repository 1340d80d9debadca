"""Loading: environment files read, merged (defaults.yaml + <name>.yaml) and validated; every
error names the file and the field."""

import codecs
import copy
import ipaddress
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    ValidationError,
)

from infra_templates.addons import AddonError
from infra_templates.addons import load as load_addons
from infra_templates.settings.common import (
    DEFAULTS_FILE,
    PATTERN_WORDS,
    FieldValueError,
    ManyFieldsError,
    SettingsError,
    closest,
    construct_mapping_once,
    did_you_mean,
    mapping_text,
)
from infra_templates.settings.environment import Environment


def available_environments(folder: Path) -> list[str]:
    """The environments of ``folder``: ``<name>.yaml`` for every visible ``*.yaml`` but defaults.yaml.

    Hidden files (a name starting with ``.``: macOS's ``._prod.yaml``, Emacs's ``.#dev.yaml``, Vim's
    ``.dev.yaml.swp``) and names not ending in ``.yaml`` (``dev.yaml~``, ``dev.yaml.bak``) are not
    read. A visible ``*.yaml`` whose name breaks the environment-name rule is not skipped: loading it
    refuses it by name, so nothing a user wrote is silently ignored.
    """
    return sorted(
        p.stem for p in folder.glob("*.yaml") if p.name != DEFAULTS_FILE and not p.name.startswith(".") and p.is_file()
    )


def _not_a_file(path: Path) -> str | None:
    """What ``path`` is when it is there but is no file to read (a folder, a broken symbolic link,
    a device): ``"is a folder, not an environment file ..."``; None for a file or nothing there."""
    if path.is_file():
        return None
    what = "the file of the settings every environment shares" if path.name == DEFAULTS_FILE else "an environment file"
    if path.is_symlink() and not path.exists():
        with suppress(OSError):
            target = path.readlink()
            return f"is a symbolic link to {target}, which is not there: point it at {what} or remove it"
        return f"is a broken symbolic link: point it at {what} or remove it"
    if path.is_dir():
        return f"is a folder, not {what} (a YAML file): rename or remove it"
    if path.exists():
        return f"is not a regular file (a device or a pipe?), not {what}: remove it"
    return None


def _misnamed(folder: Path) -> list[str]:
    """Problems for visible files that look like environment files but are never read (``prod.yml``)."""
    odd = [
        f"{_show(p)}: {what}"
        for p in sorted(folder.glob("*.yaml"))
        if not p.name.startswith(".") and (what := _not_a_file(p)) is not None
    ]
    return odd + [
        f"{_show(p)}: is not read: environment files end in .yaml; "
        + (
            f"{p.stem}.yaml is there too: remove one of the two"
            if (folder / f"{p.stem}.yaml").exists()
            else f"rename it to {p.stem}.yaml"
        )
        for p in sorted(folder.glob("*.yml"))
        if not p.name.startswith(".")
    ]


SET_BY_THE_GENERATOR = ("name", "standby", "addons")  # Environment's fields no file may set


def load_environment(name: str, folder: Path) -> Environment:
    """Read ``folder/defaults.yaml`` and ``folder/<name>.yaml``, merge and validate them.

    Raises SettingsError whose lines name the file, the field, the value and what would be valid.
    """
    env_path = folder / f"{name}.yaml"
    defaults_path = folder / DEFAULTS_FILE
    odd = [f"{_show(path)}: {what}" for path in (env_path, defaults_path) if (what := _not_a_file(path)) is not None]
    if odd:
        raise SettingsError(odd)
    if not env_path.is_file():
        available = available_environments(folder)
        known = ", ".join(available) or "none"
        hint = did_you_mean(name, available)
        raise SettingsError([f"{_show(env_path)}: no such environment file{hint}; environments here: {known}"])
    defaults = _read_mapping(defaults_path) if defaults_path.is_file() else {}
    own = _read_mapping(env_path)
    for derived in SET_BY_THE_GENERATOR:
        if derived in own or derived in defaults:
            raise SettingsError(
                [f"{_show(env_path)}: {derived}: is set by the generator, not in a file; remove the key"]
            )
    merged = deep_merge(defaults, own)
    merged["name"] = name
    try:
        env = Environment.model_validate(merged)
        addons = load_addons(folder, name, env.services, _show)
        return env.model_copy(update={"addons": addons}) if addons else env
    except AddonError as error:
        raise SettingsError(error.problems) from None
    except ValidationError as error:
        sources = {"own": (env_path, own), "defaults": (defaults_path, defaults)}
        lines = {line for e in _without_knock_on(error.errors(), merged) for line in _describe(e, sources, merged)}
        # What is wrong before what is missing: a misspelt key (regoin) comes before the knock-on
        # "region: is required" it causes
        problems = _few_required_lines(sorted(lines, key=lambda line: ("is required and set neither" in line, line)))
        if not defaults_path.is_file():
            problems.insert(
                0,
                f"{_show(defaults_path)}: is not there: it holds the settings every environment shares (start "
                "from a copy of the shipped environments/defaults.yaml)",
            )
        elif not own:
            problems.insert(0, f"{_show(env_path)}: is empty: it must set at least what follows")
        raise SettingsError(problems) from None
    except (ValueError, TypeError, ArithmeticError, RecursionError, LookupError) as error:
        # A value no rule foresaw made a rule itself fail: still a refusal, never a traceback.
        raise SettingsError(
            [
                f"{_show(env_path)}: could not be checked ({type(error).__name__}: {_escaped(str(error))}); "
                "a value here or in defaults.yaml is of a kind the settings do not expect (please report it)"
            ]
        ) from None


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else in ``override`` replaces what ``base`` had."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses a key given twice in one mapping."""

    construct_mapping = construct_mapping_once


_FastStrictLoader: Any = _StrictLoader
if yaml.__with_libyaml__:  # libyaml's parser (C), the same constructor: 3x faster on a valid file

    class _CStrictLoader(yaml.CSafeLoader):
        construct_mapping = construct_mapping_once

    _FastStrictLoader = _CStrictLoader


MAX_FILE_BYTES = 1024 * 1024  # environment files are a few KB; 1 MiB is far beyond any real one
MAX_NODES = 100_000  # values in one file once YAML aliases are expanded (a "billion laughs" stays small)
_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


# (path, the file's bytes) -> its settings, kept inside read_once(): never handed out, only copies
_READ: ContextVar[dict[tuple[Path, bytes], dict[str, Any]] | None] = ContextVar("read", default=None)


@contextmanager
def read_once() -> Iterator[None]:
    """Within this block, ``_read_mapping`` parses a file once for the same bytes and hands out a
    deep copy of its settings each time (every environment reads defaults.yaml: about 2 ms each, 4
    environments; a copy about 0.1 ms). A file that failed is read again (and fails again, with the
    same message); one whose bytes changed is parsed anew. Outside the block nothing is kept."""
    token = _READ.set({})
    try:
        yield
    finally:
        _READ.reset(token)


def _read_mapping(path: Path) -> dict[str, Any]:
    """The settings of one environment file: the one reading path of every file the tool reads.

    Returns the top-level mapping (``{}`` for an empty file). Raises SettingsError naming the file
    (and the line where YAML gives one) for every way a file can fail: unreadable, larger than
    MAX_FILE_BYTES (checked before parsing: a 20 MB file is refused at once), not UTF-8 (a Latin-1
    byte, a UTF-16 or UTF-32 file; a UTF-8 byte-order mark is accepted, as YAML allows), not YAML,
    a tag this reader does not construct (``!!python/object``...), a key given twice, a merge key
    (``<<``) on something other than a mapping, nesting too deep for the parser, or aliases that
    expand to more than MAX_NODES values. Parsed by libyaml (the C loader) and, only when that
    fails, again by PyYAML's own parser for its messages and line marks.
    """
    shown = _show(path)
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise SettingsError([f"{shown}: cannot be read: {error.strerror or error}"]) from None
    kept = _READ.get()
    if kept is not None and (path, raw) in kept:  # these bytes passed every check below already
        return copy.deepcopy(kept[(path, raw)])
    settings = _settings_of(path, shown, raw)
    if kept is not None:
        with suppress(RecursionError):  # nested too deeply to copy (not to read): read again each time
            kept[(path, raw)] = copy.deepcopy(settings)
    return settings


def _settings_of(path: Path, shown: str, raw: bytes) -> dict[str, Any]:
    """``_read_mapping`` of the bytes ``raw`` read from ``path`` (``shown`` in messages)."""
    if len(raw) > MAX_FILE_BYTES:
        raise SettingsError([f"{shown}: is larger than {MAX_FILE_BYTES // 1024} KiB; an environment file is a few KB"])
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            raise SettingsError([f"{shown}: is {encoding} encoded; save it as UTF-8"])
    if b"\x00" in raw:
        line = raw[: raw.index(b"\x00")].count(b"\n") + 1
        raise SettingsError([f"{shown}: line {line}: contains a NUL byte (UTF-16 or a binary file?); save it as UTF-8"])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise SettingsError(
            [f"{shown}: line {line}: byte 0x{raw[error.start]:02x} is not UTF-8 (Latin-1?); save the file as UTF-8"]
        ) from None
    try:
        data = _parse(text, _FastStrictLoader)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError):
        try:  # read it again with PyYAML's own parser, whose messages (and marks) the user gets
            data = _parse(text, _StrictLoader)
        except yaml.YAMLError as error:
            raise SettingsError([f"{shown}: is not valid YAML{_where(error)}: {_yaml_problem(error)}"]) from None
        except RecursionError:
            raise SettingsError([f"{shown}: is nested too deeply to be settings"]) from None
        except (ValueError, TypeError, OverflowError) as error:
            raise SettingsError([f"{shown}: is not valid YAML: {_escaped(str(error))}"]) from None
    try:
        size = _size(data, {})
    except RecursionError:
        raise SettingsError([f"{shown}: is nested too deeply to be settings"]) from None
    if size > MAX_NODES:
        raise SettingsError([f"{shown}: its aliases (*name) expand to more than {MAX_NODES:,} values; write them out"])
    return _checked_mapping(path, data)


def _parse(text: str, loader: Any) -> Any:
    return yaml.load(text, Loader=loader)  # _StrictLoader or _CStrictLoader: both safe loaders


def _escaped(text: str) -> str:
    """``text`` with every character outside printable ASCII escaped (``\\u0435``), so a look-alike
    (a Cyrillic e, U+0435, in eu-west-1), an invisible space or a control character shows in a message."""
    return "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii") for c in text)


def _where(error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""


def _yaml_problem(error: yaml.YAMLError) -> str:
    problem = getattr(error, "problem", None) or str(error)
    if isinstance(error, yaml.constructor.ConstructorError) and "constructor for the tag" in problem:
        problem += "; settings are plain mappings, lists, strings, numbers and booleans"
    return _escaped(problem)


def _size(data: Any, seen: dict[int, int]) -> int:
    """How many values ``data`` holds with every alias written out (shared objects counted each
    time they appear, computed once each: a billion laughs is measured without expanding it)."""
    if not isinstance(data, dict | list):
        return 1
    known = seen.get(id(data))
    if known is not None:
        return known
    seen[id(data)] = MAX_NODES + 1  # a recursive alias (&a [*a]) is refused as too large
    items = [*data.keys(), *data.values()] if isinstance(data, dict) else data
    total = 1
    for item in items:
        total += _size(item, seen)
        if total > MAX_NODES:
            break
    seen[id(data)] = total
    return total


def _checked_mapping(path: Path, data: Any) -> dict[str, Any]:
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


def _describe(error: Any, sources: dict[str, tuple[Path, dict[str, Any]]], merged: dict[str, Any]) -> list[str]:
    """One line per problem: ``file: field.path = value: what is wrong and what would be valid``."""
    raw: tuple[str | int, ...] = tuple(error["loc"])
    loc = _as_written(raw, merged)
    value = error.get("input")
    cause = (error.get("ctx") or {}).get("error")
    causes = cause.errors if isinstance(cause, ManyFieldsError) else [cause]
    if all(isinstance(c, FieldValueError) for c in causes):
        return [
            _line(
                _as_written(raw + c.path, merged),
                c.value if c.value is not None else _lookup(value, c.path),
                str(c),
                sources,
            )
            for c in causes
            if isinstance(c, FieldValueError)
        ]
    if error["type"] == "extra_forbidden":
        allowed = _fields_at(Environment, loc[:-1])
        message = "is not a known setting" + did_you_mean(loc[-1], allowed)
        message += f"; valid keys here: {', '.join(allowed)}" if allowed else ""
    elif error["type"] in ("model_type", "model_attributes_type", "dict_type"):
        # pydantic's "input should be a valid dictionary or instance of Edge": a class name the user never wrote.
        # A key left with nothing under it (every line below it removed or commented out) reads as null.
        keys = _fields_at(Environment, loc)
        message = "is empty: it takes a mapping of settings" if value is None else "is not a mapping of settings"
        message += f" ({', '.join(keys)})" if keys else ""
        message += "; remove the key to keep the defaults" if value is None else ""
    elif error["type"] == "missing":  # said of the file being loaded, where the value is missing
        own_path, _ = sources["own"]
        message = f"{_show(own_path)}: {_dotted(loc)}: is required and set neither in this file nor in {DEFAULTS_FILE}"
        model = _model_at(Environment, loc)
        one_kind = model is not None and len(_models_in(_annotation_at(Environment, loc))) == 1
        takes = f"; it takes {mapping_text(model)}" if model is not None and one_kind and len(loc) > 1 else ""
        return [message + takes + _new_service_hint(loc, sources)]
    elif error["type"] == "string_pattern_mismatch" and (ctx := error.get("ctx") or {}).get("pattern") in PATTERN_WORDS:
        message = f"is not {PATTERN_WORDS[ctx['pattern']]}"
        hint = _description_at(Environment, loc)
        message += f" ({hint.rstrip('.')})" if hint else ""
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
        message = message[0].lower() + message[1:] if message else message
        if error["type"] == "literal_error":  # "Input should be 'a', 'b' or 'c'"
            choices = re.findall(r"'([^']*)'|(-?\d+)", str((error.get("ctx") or {}).get("expected", "")))
            message += did_you_mean(value, [quoted or number for quoted, number in choices])
        hint = _description_at(Environment, loc)
        if hint and error["type"] != "value_error":
            message += f" ({hint.rstrip('.')})"
    return [_line(loc, value, message, sources)]


def _without_knock_on(errors: list[Any], merged: dict[str, Any]) -> list[Any]:
    """``errors`` without the "missing" of a required setting that a misspelt key beside it names
    (``imgae`` under a sidecar, ``regoin`` at the top), or that lies under one (``netwrok``: every
    ``network.*`` missing): the misspelt key's line already says "did you mean 'image'?", and fixing
    it sets the setting, so a second line saying it is required would send the user after a second
    problem that is not there."""
    meant = set()
    for e in errors:
        if e["type"] == "extra_forbidden":
            raw = tuple(e["loc"])
            name = closest(raw[-1], _fields_at(Environment, _as_written(raw, merged)[:-1]))
            meant.add((raw[:-1], name))
    return [e for e in errors if e["type"] != "missing" or not _under_meant(tuple(e["loc"]), meant)]


def _under_meant(loc: tuple[Any, ...], meant: set[tuple[tuple[Any, ...], Any]]) -> bool:
    """Whether a missing setting at ``loc`` is, or lies under, a key a misspelt one names (``netwrok``
    names ``network``: ``network.cidr`` missing is its knock-on too)."""
    return any((loc[:i], loc[i]) in meant for i in range(len(loc)))


MISSING = ": is required and set neither in this file nor in "
MAX_MISSING_LINES = 3  # more settings missing than this from one file: one line naming them all


def _few_required_lines(problems: list[str]) -> list[str]:
    """``problems`` with its "is required" lines of one file, when there are more than
    :data:`MAX_MISSING_LINES` (an empty file, a missing defaults.yaml: dozens), as one line naming
    every setting: ``dev.yaml: 18 settings are required and set neither in this file nor in
    defaults.yaml: account_id, region, ...``."""
    missing = [p for p in problems if MISSING in p and not p.endswith(")")]
    if len(missing) <= MAX_MISSING_LINES:
        return problems
    where = missing[0].split(": ", 1)[0]
    if any(p.split(": ", 1)[0] != where for p in missing):
        return problems
    names = [p.split(": ", 2)[1] for p in missing]
    shown = f"{where}: {len(names)} settings are required and set neither in this file nor in {DEFAULTS_FILE}: "
    return [p for p in problems if p not in missing] + [shown + ", ".join(names)]


def _new_service_hint(loc: tuple[str | int, ...], sources: dict[str, tuple[Path, dict[str, Any]]]) -> str:
    """For a setting missing from a service that only the environment's file names, close to one of
    defaults.yaml's (``wbe`` beside ``web``): ``" (services.wbe is in this file only; did you mean
    'web'?)"``, since the fix is then the name, not the settings asked for; else ``""``."""
    if len(loc) < 3 or loc[0] != "services":
        return ""
    _, defaults = sources["defaults"]
    _, own = sources["own"]
    named = defaults.get("services") if isinstance(defaults, dict) else None
    if not isinstance(named, dict) or loc[1] in named:
        return ""
    listed = own.get("services")
    also_here: dict[Any, Any] = listed if isinstance(listed, dict) else {}
    # a name this file also uses is no candidate (web2 beside web is a new service, not a misspelt web)
    hint = did_you_mean(loc[1], sorted(str(name) for name in named if name not in also_here))
    return f" (services.{loc[1]} is in this file only{hint})" if hint else ""


def _line(
    loc: tuple[str | int, ...], value: object, message: str, sources: dict[str, tuple[Path, dict[str, Any]]]
) -> str:
    """``env file: field = value: message``; a value the environment inherits names both files:
    ``environments/dev.yaml: field = value (inherited from environments/defaults.yaml): message``, since
    the fix may be in either (a default that conflicts with this environment's other settings)."""
    shown = "" if value is None or isinstance(value, dict | list) else f" = {_shown(value)}"
    own_path, _ = sources["own"]
    origin = _origin(loc, sources)
    inherited = "" if origin == own_path else f" ({INHERITED} {_show(origin)})"
    return f"{_show(own_path)}: {_dotted(loc)}{shown}{inherited}: {_escaped(message)}"


INHERITED = "inherited from"  # the words that mark a value an environment file takes from defaults.yaml
_INHERITED_LINE = re.compile(rf"^(?P<env>[^:]+): (?P<field>.*?) \({INHERITED} (?P<defaults>[^)]+)\): (?P<why>.*)$")


def merge_inherited(problems: list[str], environments: list[str], env_file: Any) -> list[str]:
    """``problems`` with each inherited-value problem that every one of ``environments`` reports the
    same way said once, of defaults.yaml (``defaults.yaml: field = value: why (every environment: dev,
    prod)``): the fix is there. One that only some environments report stays a line per environment,
    each naming its file: the fix may be there. ``env_file(name)`` is the file of each environment as
    the lines show it."""
    seen: dict[tuple[str, str, str], list[str]] = {}
    for line in problems:
        if match := _INHERITED_LINE.match(line):
            seen.setdefault((match["field"], match["defaults"], match["why"]), []).append(match["env"])
    everywhere = {
        key
        for key, files in seen.items()
        if len(environments) > 1 and sorted(files) == sorted(env_file(name) for name in environments)
    }
    merged: list[str] = []
    for line in problems:
        match = _INHERITED_LINE.match(line)
        key = (match["field"], match["defaults"], match["why"]) if match else None
        if key is None or key not in everywhere:
            merged.append(line)
        elif key in everywhere:
            field, defaults, why = key
            said = f"{defaults}: {field}: {why} (every environment: {', '.join(environments)})"
            if said not in merged:
                merged.append(said)
    return merged


def _shown(value: object, limit: int = 80) -> str:
    """A value as a message shows it: as YAML writes it for a boolean or null (``true``, not Python's
    ``True``), else Python's literal with non-ASCII escaped (``ascii``), so a look-alike character
    shows; an over-long value cut, with its length."""
    text = ("true" if value else "false") if isinstance(value, bool) else "null" if value is None else ascii(value)
    return text if len(text) <= limit else f"{text[: limit - 10]}... ({len(str(value)):,} characters)"


def _as_written(loc: tuple[str | int, ...], data: Any) -> tuple[str | int, ...]:
    """``loc`` without the parts pydantic adds that are not in the file (a union's tag, such as
    ``capacity.serverless.min_acu`` for what the file calls ``capacity.min_acu``)."""
    written: list[str | int] = []
    for index, part in enumerate(loc):
        following = loc[index + 1] if index + 1 < len(loc) else None
        if isinstance(data, dict) and isinstance(part, str) and part not in data and following in data:
            continue
        written.append(part)
        data = _lookup(data, (part,)) if _has(data, (part,)) else None
    return tuple(written)


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
        text += f"[{part}]" if isinstance(part, int) else (f".{_escaped(str(part))}" if text else _escaped(str(part)))
    return text or "(top level)"


def _description_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> str | None:
    """The Field description of the setting at ``loc``, used as a hint in messages."""
    fields = [part for part in loc if isinstance(part, str)]
    if not fields:
        return None
    parent = _model_at(model, tuple(fields[:-1]))
    if parent is not None and fields[-1] in parent.model_fields:
        return parent.model_fields[fields[-1]].description
    return None


def _fields_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The keys a model accepts at ``loc`` (used to suggest what an unknown key should be)."""
    current = _model_at(model, loc)
    if current is None:
        return []
    return sorted(k for k in current.model_fields if not (current is Environment and k in SET_BY_THE_GENERATOR))


def _model_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The settings model at ``loc`` (``("services", "api", "autoscaling")``: a service's
    ``Autoscaling``), or None where ``loc`` leaves the models. A list's index and a mapping's key
    (``services``' service names: ``dict[str, Service]``) step into the item's model."""
    current: Any = model
    keyed = False  # the part before was a field holding a mapping: this part is one of its keys
    for part in loc:
        if isinstance(part, int) or keyed:
            keyed = False
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)) or part not in current.model_fields:
            return None
        annotation = current.model_fields[part].annotation
        keyed = _holds_mapping(annotation)
        current = _model_in(annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _annotation_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> Any:
    """The annotation of the field at ``loc`` (a str key below a model), or None."""
    fields = [part for part in loc if isinstance(part, str)]
    parent = _model_at(model, loc[:-1]) if loc and isinstance(loc[-1], str) else None
    if parent is None or not fields or fields[-1] not in parent.model_fields:
        return None
    return parent.model_fields[fields[-1]].annotation


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """Every settings model an annotation may hold (``Serverless | Provisioned``: two)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _holds_mapping(annotation: Any) -> bool:
    """``dict[K, V]`` or ``Mapping[K, V]``, alone or in a union (``dict[str, Service] | None``)."""
    origin = get_origin(annotation)
    if origin is dict or origin is Mapping:
        return True
    return origin in (Union, UnionType) and any(_holds_mapping(arg) for arg in get_args(annotation))


def _model_in(annotation: Any) -> Any:
    """The BaseModel inside ``list[Model]`` / ``Model | None`` annotations, else the annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation
