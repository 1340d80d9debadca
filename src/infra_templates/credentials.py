"""Which plain values look like credentials, by detect-secrets' plugins (Yelp's detect-secrets API,
as packaged by Bridgecrew in ``bc-detect-secrets``, the copy checkov already installs).

The plugins are the detectors of known credential formats (AWS access keys, Stripe, GitHub, Slack,
Twilio, SendGrid, npm, JWTs, private keys, basic-auth URLs, ...) and ``KeywordDetector``, which
flags a value given to a name like ``*_PASSWORD``, ``*_SECRET*``, ``*_TOKEN`` or ``*API_KEY*``. The
high-entropy plugins are left out: they flag ordinary paths, URLs and identifiers, and a refusal
the user cannot act on would teach nothing.

Importing detect-secrets costs about 0.1 s of CPU (it imports ``requests`` for its verifiers), a
third of what generating every environment may take. So the lines it found clean are remembered,
as SHA-256 digests only (never a value), in a file of the virtual environment it is installed in
(``<venv>/var/cache/infra-templates/``), named after detect-secrets' version and plugin files and
this module's choice of plugins: a line seen clean before is not scanned again, and a build whose
variables have not changed does not import detect-secrets at all. A line it flags is never
remembered, so a refusal is always detect-secrets' own answer. Where that folder cannot be
written, every line is scanned, as before.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from functools import cache
from pathlib import Path

ENTROPY_PLUGINS = frozenset({"Base64HighEntropyString", "HexHighEntropyString"})
CACHE_FOLDER = Path(sys.prefix) / "var" / "cache" / "infra-templates"


@cache
def plugins() -> tuple[str, ...]:
    """The detect-secrets plugin class names used, sorted."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class  # noqa: PLC0415 - 0.1 s

    names = {cls.__name__ for cls in get_mapping_from_secret_type_to_class().values()}
    return tuple(sorted(names - ENTROPY_PLUGINS))


def credential_kinds(name: str, value: str) -> list[str]:
    """The kinds of secret detect-secrets sees in ``name: "value"`` (e.g. ``["Stripe Access Key"]``),
    sorted; empty when the value looks like none. The name is part of the line so that
    ``KeywordDetector`` sees it, as it would in a YAML file."""
    line = f"{name}: {json.dumps(value)}"
    digest = hashlib.sha256(line.encode("utf-8")).hexdigest()
    if digest in _clean_lines():
        return []
    kinds = scan(line)
    if not kinds:
        _remember_clean(digest)
    return kinds


def scan(line: str) -> list[str]:
    """detect-secrets' verdict on one line (its ``scan_line`` with ``plugins()``): the kinds found, sorted."""
    from detect_secrets.core.scan import scan_line  # noqa: PLC0415 - imported only when a line is new
    from detect_secrets.settings import transient_settings  # noqa: PLC0415

    with transient_settings({"plugins_used": [{"name": plugin} for plugin in plugins()]}):
        return sorted({found.type for found in scan_line(line)})


@cache
def cache_file() -> Path | None:
    """The file of lines found clean, for the installed detect-secrets and this module's plugins:
    named by a digest of detect-secrets' version file, its plugin files' names and sizes, and
    ``ENTROPY_PLUGINS``. None when detect-secrets is not installed."""
    spec = importlib.util.find_spec("detect_secrets")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    package = Path(next(iter(spec.submodule_search_locations)))
    stamp = hashlib.sha256()
    stamp.update((package / "__version__.py").read_bytes())
    for plugin in sorted((package / "plugins").glob("*.py")):
        stamp.update(f"{plugin.name}:{plugin.stat().st_size};".encode())
    stamp.update(",".join(sorted(ENTROPY_PLUGINS)).encode())
    return CACHE_FOLDER / f"detect-secrets-clean-{stamp.hexdigest()[:16]}.txt"


@cache
def _clean_lines() -> set[str]:
    path = cache_file()
    if path is None:
        return set()
    try:
        return set(path.read_text(encoding="ascii").split())
    except (OSError, UnicodeDecodeError):
        return set()


def _remember_clean(digest: str) -> None:
    """Append ``digest`` to the cache file: one write of one short line in append mode, which
    concurrent processes (the test workers) cannot interleave; a failure only costs a later scan."""
    _clean_lines().add(digest)
    path = cache_file()
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, f"{digest}\n".encode("ascii"))
        finally:
            os.close(descriptor)
    except OSError:
        pass  # a read-only installation: every new line is scanned, as without the cache
