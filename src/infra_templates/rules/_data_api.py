"""The RDS Data API's contract, in one place for the gate's rule E9012 (aurora.py, which loads this
file by path), the settings (config.py) and the data layer, which creates each service's database
user through it (no driver, no VPC access: an HTTPS API). The leading underscore keeps cfn-lint
from loading it as a rule module.

Sources (Amazon Aurora User Guide):
- "Supported Regions and Aurora DB engines for RDS Data API"
  (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/Concepts.Aurora_Fea_Regions_DB-eng.Feature.Data_API.html):
  Aurora PostgreSQL Serverless v2 and provisioned from 13.11, 14.8, 15.3, 16.1, 17.4 and 18.3;
  Aurora MySQL Serverless v2 and provisioned from 3.07; not available in the regions listed below.
- "Limitations for the Amazon RDS Data API"
  (https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/data-api.limitations.html): "Data API
  isn't supported on T DB instance classes"; queries run on the writer only, so a global database's
  secondary (no writer until promoted) cannot take them.
"""

from __future__ import annotations

import re

POSTGRESQL_MINIMUM = {13: (13, 11), 14: (14, 8), 15: (15, 3), 16: (16, 1), 17: (17, 4), 18: (18, 3)}
MYSQL_MINIMUM = (3, 7)
# "Not available" for both engines' Serverless v2 and provisioned clusters.
UNAVAILABLE_REGIONS = frozenset(
    {
        "ap-east-2",  # Asia Pacific (Taipei)
        "ap-south-2",  # Asia Pacific (Hyderabad)
        "ap-southeast-4",  # Asia Pacific (Melbourne)
        "ap-southeast-6",  # Asia Pacific (New Zealand)
        "ca-west-1",  # Canada West (Calgary)
        "cn-north-1",
        "cn-northwest-1",
        "eu-central-2",  # Europe (Zurich)
        "il-central-1",  # Israel (Tel Aviv)
        "mx-central-1",  # Mexico (Central)
        "us-gov-east-1",
        "us-gov-west-1",
    }
)


def data_api_problem(engine: str, version: str, region: str, instance_class: str | None) -> str | None:
    """Why a cluster of ``engine`` ``version`` in ``region`` on ``instance_class`` (None: Serverless
    v2) cannot take RDS Data API calls; None when it can."""
    if region in UNAVAILABLE_REGIONS:
        return f"the RDS Data API is not available in {region}"
    if instance_class is not None and instance_class.startswith("db.t"):
        return f"the RDS Data API does not run on T instance classes ({instance_class})"
    if engine == "aurora-postgresql":
        return _postgresql_problem(version)
    parts = re.search(r"mysql_aurora\.(\d+)\.(\d+)", version)
    if not parts or (int(parts.group(1)), int(parts.group(2))) < MYSQL_MINIMUM:
        return f"the RDS Data API needs Aurora MySQL 3.07 or later; {version} is older"
    return None


def _postgresql_problem(version: str) -> str | None:
    parts = re.match(r"^(\d+)(?:\.(\d+))?", version)
    major, minor = (int(parts.group(1)), int(parts.group(2) or 0)) if parts else (0, 0)
    minimum = POSTGRESQL_MINIMUM.get(major)
    if major > max(POSTGRESQL_MINIMUM) or (minimum is not None and (major, minor) >= minimum):
        return None
    listed = ", ".join(f"{a}.{b}" for a, b in POSTGRESQL_MINIMUM.values())
    return f"the RDS Data API needs Aurora PostgreSQL {listed} or a later minor version; {version} is older"
