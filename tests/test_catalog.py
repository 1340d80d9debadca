"""The catalog reads cfn-lint's tables straight from its package folder, without importing cfn-lint
(0.4 s of CPU on every `make templates`): each table must equal what cfn-lint's own API gives."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cfnlint.helpers import AVAILABILITY_ZONES
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER
from conftest import ROOT

from infra_templates import catalog

# Every resource type a shipped layer uses and one the deployer reads permissions for, in the
# regions the shipped environments use; one region cfn-lint has no table of its own for.
TYPES = ("AWS::ECS::Service", "AWS::RDS::DBCluster", "AWS::S3::Bucket", "AWS::IAM::Role", "AWS::WAFv2::WebACL")
REGIONS = ("eu-west-1", "eu-central-1", "us-east-1")


def test_zones_and_regions_are_cfn_lints() -> None:
    assert catalog.AVAILABILITY_ZONES == AVAILABILITY_ZONES
    assert tuple(sorted(AVAILABILITY_ZONES)) == catalog.REGIONS
    assert catalog.zones_of("eu-west-1") == tuple(AVAILABILITY_ZONES["eu-west-1"])
    assert catalog.zones_of("nowhere-1") == ()


@pytest.mark.parametrize("region", REGIONS)
@pytest.mark.parametrize("resource_type", TYPES)
def test_resource_schemas_are_cfn_lints(region: str, resource_type: str) -> None:
    assert catalog.resource_schema(region, resource_type) == (
        PROVIDER_SCHEMA_MANAGER.get_resource_schema(region, resource_type).schema
    )


def test_an_unknown_type_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        catalog.resource_schema("eu-west-1", "Custom::Nothing")


def test_generation_does_not_import_cfn_lint() -> None:
    """Importing what `python generate.py` imports, and reading every table, loads no cfn-lint module."""
    code = (
        f"import sys; sys.path[:0] = [{str(ROOT / 'src')!r}, {str(ROOT)!r}]; import generate; "
        "from infra_templates import catalog; catalog.aurora_versions('aurora-postgresql'); "
        "catalog.handler_permissions('eu-west-1', 'AWS::ECS::Service'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cfnlint', 'sympy', 'networkx')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
