"""Aurora: Serverless v2 capacity the engine version accepts; where the RDS Data API runs."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch


def _contract(name: str = "_zero_acu") -> Any:
    """``<name>.py`` beside this file, loaded by path (this module is loaded standalone)."""
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"infra_templates_rules{name}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_ZERO_ACU = _contract()
POSTGRESQL_MINIMUM, MYSQL_MINIMUM = _ZERO_ACU.POSTGRESQL_MINIMUM, _ZERO_ACU.MYSQL_MINIMUM
PAUSE_SECONDS = _ZERO_ACU.PAUSE_SECONDS
supports_zero_acu = _ZERO_ACU.supports_zero_acu
data_api_problem = _contract("_data_api").data_api_problem


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


class AuroraDataApiWhereItRuns(CloudFormationLintRule):
    """E9012: EnableHttpEndpoint (the RDS Data API) only where AWS offers it."""

    id = "E9012"
    shortdesc = "Aurora: the RDS Data API needs a supporting engine version, class and region"
    description = (
        "The RDS Data API (EnableHttpEndpoint) on Aurora Serverless v2 and provisioned clusters needs Aurora "
        "PostgreSQL 13.11, 14.8, 15.3, 16.1, 17.4, 18.3 or a later minor version, or Aurora MySQL 3.07 or later, "
        "in a region that has it, and does not run on T DB instance classes. Sources: Amazon Aurora User Guide, "
        "'Supported Regions and Aurora DB engines for RDS Data API' and 'Limitations for the Amazon RDS Data API'."
    )
    source_url = "https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.limitations.html"
    tags: ClassVar[list[str]] = ["resources", "rds"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        instances = cfn.get_resources("AWS::RDS::DBInstance")
        for region in cfn.regions:
            for logical, cluster in cfn.get_resources("AWS::RDS::DBCluster").items():
                properties = cluster.get("Properties", {})
                engine, version = properties.get("Engine"), properties.get("EngineVersion")
                if properties.get("EnableHttpEndpoint") not in (True, "true") or not isinstance(version, str):
                    continue
                classes = sorted(
                    {
                        i.get("Properties", {}).get("DBInstanceClass")
                        for i in instances.values()
                        if i.get("Properties", {}).get("DBClusterIdentifier") == {"Ref": logical}
                    }
                    - {None, "db.serverless"}
                ) or [None]
                for instance_class in classes:
                    problem = data_api_problem(engine, version, region, instance_class)
                    if problem:
                        path = ["Resources", logical, "Properties", "EnableHttpEndpoint"]
                        matches.append(RuleMatch(path, f"EnableHttpEndpoint: {problem}"))
                        break
        return matches
