"""Aurora Serverless v2 capacity the engine version accepts."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch

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


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class AuroraZeroAcuNeedsAutoPauseVersion(CloudFormationLintRule):
    """E9007: MinCapacity 0 only on engine versions with auto-pause; SecondsUntilAutoPause in range."""

    id = "E9007"
    shortdesc = "Aurora Serverless v2: 0 ACUs needs an auto-pause engine version"
    description = (
        "Aurora Serverless v2 scales to 0 ACUs (automatic pause) only on engine versions that support "
        "auto-pause: Aurora PostgreSQL 13.15, 14.12, 15.7, 16.3 and higher, Aurora MySQL 3.08.0 and "
        "higher; older versions take 0.5 ACU at the least. SecondsUntilAutoPause is 300 to 86,400. "
        "Sources: Amazon Aurora User Guide, 'Scaling to Zero ACUs with automatic pause and resume for "
        "Aurora Serverless v2'; RDS API reference, ServerlessV2ScalingConfiguration."
    )
    source_url = "https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-serverless-v2-auto-pause.html"
    tags: ClassVar[list[str]] = ["resources", "rds"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        for logical, cluster in cfn.get_resources("AWS::RDS::DBCluster").items():
            properties = cluster.get("Properties", {})
            scaling = properties.get("ServerlessV2ScalingConfiguration")
            if not isinstance(scaling, dict):
                continue
            path = ["Resources", logical, "Properties", "ServerlessV2ScalingConfiguration"]
            engine, version = properties.get("Engine"), properties.get("EngineVersion")
            zero = _number(scaling.get("MinCapacity")) == 0
            if zero and isinstance(engine, str) and isinstance(version, str) and not supports_zero_acu(engine, version):
                matches.append(
                    RuleMatch(
                        [*path, "MinCapacity"],
                        f"MinCapacity 0 (auto-pause) needs a newer {engine} than {version} "
                        "(PostgreSQL 13.15/14.12/15.7/16.3+, MySQL 3.08.0+); use 0.5 or upgrade",
                    )
                )
            seconds = _number(scaling.get("SecondsUntilAutoPause"))
            if seconds is not None and not PAUSE_SECONDS[0] <= seconds <= PAUSE_SECONDS[1]:
                matches.append(
                    RuleMatch(
                        [*path, "SecondsUntilAutoPause"],
                        f"SecondsUntilAutoPause {seconds:g} is outside {PAUSE_SECONDS[0]}..{PAUSE_SECONDS[1]}",
                    )
                )
        return matches
