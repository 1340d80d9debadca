"""Which plain values look like credentials, by detect-secrets' plugins (Yelp's detect-secrets API,
as packaged by Bridgecrew in ``bc-detect-secrets``, the copy checkov already installs).

The plugins are the detectors of known credential formats (AWS access keys, Stripe, GitHub, Slack,
Twilio, SendGrid, npm, JWTs, private keys, basic-auth URLs, ...) and ``KeywordDetector``, which
flags a value given to a name like ``*_PASSWORD``, ``*_SECRET*``, ``*_TOKEN`` or ``*API_KEY*``. The
high-entropy plugins are left out: they flag ordinary paths, URLs and identifiers, and a refusal
the user cannot act on would teach nothing.
"""

from __future__ import annotations

import json
from functools import cache

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.core.scan import scan_line
from detect_secrets.settings import transient_settings

ENTROPY_PLUGINS = frozenset({"Base64HighEntropyString", "HexHighEntropyString"})


@cache
def plugins() -> tuple[str, ...]:
    """The detect-secrets plugin class names used, sorted."""
    names = {cls.__name__ for cls in get_mapping_from_secret_type_to_class().values()}
    return tuple(sorted(names - ENTROPY_PLUGINS))


def credential_kinds(name: str, value: str) -> list[str]:
    """The kinds of secret detect-secrets sees in ``name: "value"`` (e.g. ``["Stripe Access Key"]``),
    sorted; empty when the value looks like none. The name is part of the line so that
    ``KeywordDetector`` sees it, as it would in a YAML file."""
    with transient_settings({"plugins_used": [{"name": plugin} for plugin in plugins()]}):
        return sorted({found.type for found in scan_line(f"{name}: {json.dumps(value)}")})
