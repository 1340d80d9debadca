"""Aurora Serverless v2's scale-to-zero contract, in one place for the rule E9007 (aurora.py) and
the settings (settings/database.py), which must not import cfn-lint to read it (0.75 s of CPU: sympy). The
leading underscore keeps cfn-lint from loading this file as a rule module; aurora.py loads it by
path, as cfn-lint loads aurora.py (standalone, not as part of this package)."""

from __future__ import annotations

import re

# "Scaling to Zero ACUs with automatic pause and resume for Aurora Serverless v2": a minimum of
# 0 ACUs needs Aurora PostgreSQL 13.15, 14.12, 15.7, 16.3 or higher minor versions (every later
# major), or Aurora MySQL 3.08.0 or higher.
POSTGRESQL_MINIMUM = {13: (13, 15), 14: (14, 12), 15: (15, 7), 16: (16, 3)}
MYSQL_MINIMUM = (3, 8, 0)
PAUSE_SECONDS = (300, 86_400)  # ServerlessV2ScalingConfiguration.SecondsUntilAutoPause


def supports_zero_acu(engine: str, version: str) -> bool | None:
    """Whether ``engine`` at ``version`` scales to 0 ACUs; None when the version is not a literal."""
    if engine == "aurora-postgresql":
        parts = re.match(r"^(\d+)(?:\.(\d+))?", version)
        if not parts:
            return None
        major, minor = int(parts.group(1)), int(parts.group(2) or 0)
        if major > max(POSTGRESQL_MINIMUM):
            return True
        return major in POSTGRESQL_MINIMUM and (major, minor) >= POSTGRESQL_MINIMUM[major]
    if engine == "aurora-mysql":
        parts = re.search(r"mysql_aurora\.(\d+)\.(\d+)\.(\d+)", version)
        if not parts:
            return None
        return tuple(int(p) for p in parts.groups()) >= MYSQL_MINIMUM
    return None
