"""The cost estimate: a small hand-written template priced line by line against figures worked out
by hand, what a change in desired count or zones does to it, refused regions, the shipped table."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import BUILT, Generated, edit_yaml, generate_main, resources

from infra_templates import cost
from infra_templates.config import load_settings
from infra_templates.cost import CostError, Prices, StackInput
from infra_templates.pipeline import build_once
from templates import environment_output

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
HOURS = 730

# Round figures, so every expected amount below is worked out by hand.
FIXED: dict[str, float] = {
    "nat_gateway_hour": 0.05,
    "public_ipv4_hour": 0.005,
    "alb_hour": 0.02,
    "interface_endpoint_hour": 0.01,
    "fargate_vcpu_hour": 0.04,
    "fargate_gb_hour": 0.004,
    "fargate_spot_factor": 0.25,
    "aurora_acu_hour": 0.1,
    "kms_key_month": 1.0,
    "secret_month": 0.4,
    "alarm_metric_month": 0.1,
    "composite_alarm_month": 0.5,
    "dashboard_month": 3.0,
    "custom_metric_month": 0.3,
    "waf_web_acl_month": 5.0,
    "waf_rule_month": 1.0,
    "health_check_month": 0.5,
    "health_check_feature_month": 1.0,
}


def hand_prices() -> Prices:
    fixed: dict[str, dict[str, Any]] = {
        key: {"unit": key, "source": "test", "xx-test-1": value} for key, value in FIXED.items()
    }
    fixed["aurora_instance_hour"] = {"unit": "instance-hour", "source": "test", "xx-test-1": {"db.r7g.large": 0.3}}
    usage = {key: {"unit": key, "source": "test", "xx-test-1": 0.01} for key in cost.ITEM_NAMES}
    return Prices(
        read_on="2000-01-01",
        hours=HOURS,
        fixed=fixed,
        usage=usage,
        sources={"test": {"page": "here"}},
        container_insights={"per_cluster": 9, "per_service": 14, "per_task_family": 8},
    )


def small_template(desired: int = 3, zones: int = 2) -> dict[str, Any]:
    subnets = [{"Ref": f"Public{i}"} for i in range(zones)]
    return {
        "Resources": {
            "Nat": {"Type": "AWS::EC2::NatGateway", "Properties": {}},
            "NatAddress": {"Type": "AWS::EC2::EIP", "Properties": {}},
            "Alb": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {"Subnets": subnets}},
            "Endpoint": {
                "Type": "AWS::EC2::VPCEndpoint",
                "Properties": {"VpcEndpointType": "Interface", "SubnetIds": subnets},
            },
            "Cluster": {
                "Type": "AWS::ECS::Cluster",
                "Properties": {"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]},
            },
            "Task": {"Type": "AWS::ECS::TaskDefinition", "Properties": {"Cpu": "512", "Memory": "2048"}},
            "Service": {
                "Type": "AWS::ECS::Service",
                "Properties": {
                    "ServiceName": "api",
                    "TaskDefinition": {"Ref": "Task"},
                    "DesiredCount": desired,
                    "CapacityProviderStrategy": [
                        {"CapacityProvider": "FARGATE", "Base": 1, "Weight": 1},
                        {"CapacityProvider": "FARGATE_SPOT", "Weight": 1},
                    ],
                },
            },
            "Db": {
                "Type": "AWS::RDS::DBCluster",
                "Properties": {
                    "ServerlessV2ScalingConfiguration": {"MinCapacity": 0.5, "MaxCapacity": 4},
                    "ManageMasterUserPassword": True,
                },
            },
            "Writer": {
                "Type": "AWS::RDS::DBInstance",
                "Properties": {"DBInstanceClass": "db.serverless", "DBClusterIdentifier": {"Ref": "Db"}},
            },
            "Reader": {
                "Type": "AWS::RDS::DBInstance",
                "Properties": {"DBInstanceClass": "db.r7g.large", "DBClusterIdentifier": {"Ref": "Db"}},
            },
            "Acl": {"Type": "AWS::WAFv2::WebACL", "Properties": {"Rules": [{}, {}, {}]}},
            "Key": {"Type": "AWS::KMS::Key", "Properties": {}},
            "Secret": {"Type": "AWS::SecretsManager::Secret", "Properties": {"ReplicaRegions": [{"Region": "x"}]}},
            "CpuAlarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"MetricName": "CPUUtilization"}},
            "MathAlarm": {
                "Type": "AWS::CloudWatch::Alarm",
                "Properties": {"Metrics": [{"Id": "a", "MetricStat": {}}, {"Id": "b", "MetricStat": {}}, {"Id": "e"}]},
            },
            "Either": {"Type": "AWS::CloudWatch::CompositeAlarm", "Properties": {}},
            "Check": {
                "Type": "AWS::Route53::HealthCheck",
                "Properties": {"HealthCheckConfig": {"Type": "HTTPS", "RequestInterval": 30}},
            },
            "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {}},
            "Role": {"Type": "AWS::IAM::Role", "Properties": {}},
        }
    }


def priced(body: dict[str, Any], region: str = "xx-test-1") -> cost.Estimate:
    return cost.estimate("test", [StackInput("s", region, body)], hand_prices())


def test_a_small_template_is_priced_line_by_line() -> None:
    lines = {line.item: round(line.monthly, 6) for line in priced(small_template()).lines}
    # 3 tasks, base 1 on FARGATE, the other 2 split 1:1: 2 on-demand, 1 on Spot at a quarter of the price.
    expected = {
        "NAT gateway Nat": 730 * 0.05,  # 36.50
        "public IPv4 address NatAddress": 730 * 0.005,  # 3.65
        "load balancer Alb": 730 * 0.02,  # 14.60
        "load balancer Alb: public IPv4 addresses": 2 * 730 * 0.005,  # 7.30: one per subnet
        "interface endpoint Endpoint (one per zone)": 2 * 730 * 0.01,  # 14.60
        "Container Insights (enabled): cluster and 1 service(s)": (9 + 14 + 8) * 0.3,  # 9.30
        "service api: 2 task(s) on Fargate, 0.5 vCPU": 2 * 0.5 * 730 * 0.04,  # 29.20
        "service api: 2 task(s) on Fargate, 2 GB": 2 * 2 * 730 * 0.004,  # 11.68
        "service api: 1 task(s) on Fargate Spot, 0.5 vCPU": 0.5 * 730 * 0.04 * 0.25,  # 3.65
        "service api: 1 task(s) on Fargate Spot, 2 GB": 2 * 730 * 0.004 * 0.25,  # 1.46
        "database Db: its RDS-managed password secret": 0.4,
        "database Writer: 0.5 ACU floor": 0.5 * 730 * 0.1,  # 36.50
        "database Reader: db.r7g.large": 730 * 0.3,  # 219.00
        "WAF web ACL Acl": 5.0,
        "WAF web ACL Acl: rules and rule groups": 3 * 1.0,
        "KMS key Key": 1.0,
        "secret Secret and 1 replica(s)": 2 * 0.4,
        "alarms (metrics they watch)": (1 + 2) * 0.1,  # the math alarm reads two metrics
        "composite alarms": 0.5,
        "health check Check": 0.5,
        "health check Check: optional features": 1.0,  # HTTPS
    }
    assert lines == pytest.approx(expected)
    assert priced(small_template()).total == pytest.approx(sum(expected.values()))


def test_usage_priced_items_are_listed_not_added() -> None:
    estimate = priced(small_template())
    names = {u.item for u in estimate.usage}
    assert {"NAT gateway data processed", "CloudWatch Logs ingestion", "Aurora storage", "WAF requests inspected"} <= (
        names
    )
    assert all(u.unit_price == 0.01 for u in estimate.usage)
    assert estimate.unpriced == ()


def test_one_more_task_costs_what_one_task_costs() -> None:
    three = priced(small_template(desired=3)).total
    four = priced(small_template(desired=4)).total
    # The 4th task: base 1 taken, 3 split 1:1, so half a task more on each provider.
    task = 0.5 * 730 * 0.04 + 2 * 730 * 0.004  # 14.60 + 5.84 on-demand
    assert four - three == pytest.approx(task / 2 + task * 0.25 / 2)


def test_a_third_zone_adds_an_address_and_an_endpoint_zone() -> None:
    two = priced(small_template(zones=2)).total
    three = priced(small_template(zones=3)).total
    assert three - two == pytest.approx(730 * 0.005 + 730 * 0.01)


@pytest.mark.parametrize(
    ("strategy", "split"),
    [
        (
            [
                {"CapacityProvider": "FARGATE", "Base": 0, "Weight": 0},
                {"CapacityProvider": "FARGATE_SPOT", "Weight": 1},
            ],
            (0, 4),
        ),
        (
            [
                {"CapacityProvider": "FARGATE", "Base": 2, "Weight": 1},
                {"CapacityProvider": "FARGATE_SPOT", "Weight": 3},
            ],
            (2.5, 1.5),
        ),
        ([{"CapacityProvider": "FARGATE", "Base": 6, "Weight": 1}], (4, 0)),
    ],
)
def test_fargate_split_takes_the_base_first_then_weights(
    strategy: list[dict[str, Any]], split: tuple[float, float]
) -> None:
    assert cost.fargate_split(4, strategy) == split


def test_a_paused_database_has_no_compute_floor() -> None:
    body = small_template()
    body["Resources"]["Db"]["Properties"]["ServerlessV2ScalingConfiguration"]["MinCapacity"] = 0
    items = {line.item for line in priced(body).lines}
    assert not any("ACU floor" in item for item in items)


def test_container_insights_off_costs_nothing() -> None:
    body = small_template()
    body["Resources"]["Cluster"]["Properties"]["ClusterSettings"] = [{"Name": "containerInsights", "Value": "disabled"}]
    assert not any("Container Insights" in line.item for line in priced(body).lines)


def test_an_unknown_region_is_refused_by_name() -> None:
    with pytest.raises(CostError, match=r"no prices for region mars-north-1 in aws\.json"):
        priced(small_template(), region="mars-north-1")


def test_an_unknown_instance_class_is_refused_by_name() -> None:
    body = small_template()
    body["Resources"]["Reader"]["Properties"]["DBInstanceClass"] = "db.x9.huge"
    with pytest.raises(CostError, match=r"db\.x9\.huge"):
        priced(body)


def test_unknown_resource_types_are_reported_not_free() -> None:
    body = {"Resources": {"Odd": {"Type": "AWS::Odd::Thing", "Properties": {}}}}
    assert priced(body).unpriced == ("AWS::Odd::Thing (s)",)


def test_the_shipped_table_is_complete_and_sourced() -> None:
    prices = Prices.load()
    assert {"eu-west-1", "eu-central-1", "us-east-1"} <= set(prices.regions)
    for key, entry in [*prices.fixed.items(), *prices.usage.items()]:
        assert entry["source"] in prices.sources, key
        assert prices.sources[entry["source"]]["page"].startswith("https://aws.amazon.com/"), key
    assert all("checked" in entry for entry in prices.fixed.values())
    assert set(cost.ITEM_NAMES) == set(prices.usage)
    assert len(prices.read_on) == 10  # ISO date


def test_every_resource_of_the_golden_output_is_known() -> None:
    for estimate in cost.read_output(GOLDEN):
        assert estimate.unpriced == (), estimate.label
        assert estimate.total > 0


@pytest.mark.parametrize("folder", ["dev", "staging", "prod", "dr", "project"])
def test_deploy_guide_shows_the_figure_and_date_at_the_top(folder: str) -> None:
    estimate = cost.read_folder(GOLDEN / folder)
    guide = (GOLDEN / folder / "DEPLOY.md").read_text(encoding="utf-8")
    line = cost.summary_line(estimate)
    assert line in guide
    assert cost.money(estimate.total) in line and cost.default_prices().read_on in line
    assert guide.index(line) < guide.index("\n## ")  # before the first section: the first thing read


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    """``python generate.py cost ARGS`` as users run it."""
    return subprocess.run(
        [sys.executable, str(ROOT / "generate.py"), "cost", *args], capture_output=True, text=True, check=False
    )


def _main(*args: str) -> subprocess.CompletedProcess[str]:
    """The same command through generate.py's ``main`` in this process (conftest's generate_main):
    the same parsing, exit status and printing without an interpreter's start-up (0.4 s of CPU).
    test_cli_prints_a_table_per_environment runs the command itself."""
    status, out, err = generate_main("cost", *args)
    return subprocess.CompletedProcess(["generate.py", "cost", *args], status, out, err)


def test_cli_prints_a_table_per_environment() -> None:
    result = _run("--output", str(GOLDEN))
    assert result.returncode == 0, result.stderr
    for folder in ("dev", "staging", "prod", "dr", "project"):
        assert f"\n  {folder} " in result.stdout
    assert "Not in the figure, priced by use" in result.stdout


def test_cli_against_shows_what_a_change_costs(tmp_path: Path) -> None:
    shutil.copytree(GOLDEN / "dev", tmp_path / "dev")
    service = tmp_path / "dev" / "svc-web.json"
    body = json.loads(service.read_text(encoding="utf-8"))
    changed = copy.deepcopy(body)
    changed["Resources"]["Service"]["Properties"]["DesiredCount"] += 1
    service.write_text(json.dumps(changed), encoding="utf-8")
    before = cost.read_folder(GOLDEN / "dev")
    after = cost.read_folder(tmp_path / "dev")
    result = _main("--output", str(tmp_path), "--env", "dev", "--against", str(GOLDEN))
    assert result.returncode == 0, result.stderr
    delta = after.total - before.total
    assert delta > 0
    assert f"dev          +{cost.money(delta)}" in result.stdout
    assert f"shop-dev-svc-web                         +{cost.money(delta)}" in result.stdout


def test_cli_without_output_says_what_to_do(tmp_path: Path) -> None:
    result = _main("--output", str(tmp_path))
    assert result.returncode == 2  # a folder option that cannot be used (1 is kept for a failed estimate)
    assert "make templates" in result.stderr


CHEAP = {
    "database__capacity": {"mode": "serverless", "min_acu": 0, "max_acu": 2, "readers": 0},
    "network__nat_gateways": "single",
    "platform__container_insights": "disabled",
    "platform__waf": {"cloudfront": False},
    "monitoring__dashboard": False,
}


def _fixed_cost(settings: Path, env: str) -> float:
    """The fixed monthly cost of ``output/<env>/`` built from ``settings``: that environment's folder
    alone (its stacks and those of its DR pair it lists), as ``generate.py`` builds it. The project's
    stacks are left out: they live in ``output/project/``, which a folder's estimate does not count
    (``cost.own_stacks``), and building them builds every environment (0.1 s instead of 1 s)."""
    _, _, everyone = load_settings(settings)
    [this] = [e for e in everyone if e.name == env]
    with build_once():
        stacks, files = environment_output(this, everyone, [])
    manifest = json.loads(files["manifest.json"])
    return cost.folder_estimate(manifest, {s.name: s.body for s in stacks}, env).total


def test_dev_with_the_cheap_settings_costs_at_most_100_dollars(settings_dir: Path) -> None:
    dev = settings_dir / "dev.yaml"
    full = _fixed_cost(settings_dir, "dev")
    edit_yaml(dev, **CHEAP)
    cheap = _fixed_cost(settings_dir, "dev")
    # issue 20's bar, with every example kind running (a backend and a worker at one task each,
    # their alarms and paging composites, a job)
    assert cheap <= 100
    # each lever is a setting: turning one back on costs its share again
    for setting, costly in (
        ("platform__container_insights", "enabled"),
        ("platform__waf", {"cloudfront": True}),
        ("network__nat_gateways", "per-zone"),
        ("database__capacity", {**CHEAP["database__capacity"], "min_acu": 0.5}),
        ("monitoring__dashboard", True),
    ):
        edit_yaml(dev, **{**CHEAP, setting: costly})
        assert _fixed_cost(settings_dir, "dev") > cheap + 1, setting
    assert full >= cheap


def test_cli_against_a_folder_that_is_not_there_is_refused(tmp_path: Path) -> None:
    result = _main("--output", str(GOLDEN), "--env", "dev", "--against", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "nowhere: no such folder" in result.stderr and "Traceback" not in result.stderr


def test_cli_env_naming_a_folder_that_is_not_there_is_refused_as_check_refuses_it(tmp_path: Path) -> None:
    result = _main("--output", str(GOLDEN), "--env", "nosuch")
    assert result.returncode == 2 and "Traceback" not in result.stderr and "Errno" not in result.stderr
    manifest = GOLDEN / "nosuch" / "manifest.json"  # shown relative to the working folder when inside it
    shown = manifest.relative_to(Path.cwd()) if manifest.is_relative_to(Path.cwd()) else manifest
    built = ", ".join(sorted(p.parent.name for p in GOLDEN.glob("*/manifest.json")))
    assert f"cost: --env nosuch: {shown} is not there (run `make templates`); folders: {built}\n" == result.stderr
    status, _, err = generate_main("diagram", "--output", str(tmp_path), "--env", "nosuch", "--dot-only")
    # an output with nothing built at all is said first: it is why no --env can name a folder there
    assert status == 2 and f"diagram: {tmp_path}/: no manifest.json in any of its folders" in err


def test_cli_against_an_empty_folder_shows_everything_as_new(tmp_path: Path) -> None:
    result = _main("--output", str(GOLDEN), "--env", "dev", "--against", str(tmp_path))
    assert result.returncode == 0, result.stderr
    dev = cost.read_folder(GOLDEN / "dev")
    assert f"dev          +{cost.money(dev.total)} ($0.00 -> {cost.money(dev.total)})" in result.stdout


# --- the load balancer's Scheme, CloudFront VPC origins -------------------------------------------


def test_an_internal_load_balancer_holds_no_public_address() -> None:
    """An internal ALB (behind CloudFront VPC origins) costs its hour but no public IPv4 address."""
    facing = priced(small_template(zones=2))
    body = small_template(zones=2)
    body["Resources"]["Alb"]["Properties"]["Scheme"] = "internal"
    body["Resources"]["Origin"] = {"Type": "AWS::CloudFront::VpcOrigin", "Properties": {}}
    internal = priced(body)
    items = {line.item for line in internal.lines}
    assert "load balancer Alb" in items
    assert "load balancer Alb: public IPv4 addresses" not in items
    assert facing.total - internal.total == pytest.approx(2 * 730 * 0.005)  # 7.30: one address per subnet
    assert internal.unpriced == ()  # the VPC origin is known, and free


def test_a_load_balancer_scheme_that_is_not_literal_is_refused() -> None:
    body = small_template()
    body["Resources"]["Alb"]["Properties"]["Scheme"] = {"Fn::If": ["Private", "internal", "internet-facing"]}
    with pytest.raises(CostError, match=r"Alb: cannot price a load balancer whose Scheme"):
        priced(body)


# --- which prices are confirmed -------------------------------------------------------------------

STATUSES = {"published", "consistent", "unconfirmed"}


def test_every_shipped_price_says_how_it_was_confirmed_region_by_region() -> None:
    prices = Prices.load()
    for table in (prices.fixed, prices.usage):
        for key, entry in table.items():
            regions = set(entry) - cost.PRICE_META
            checked = entry["checked"]
            assert set(checked) <= regions | {"*"}, key
            assert "*" in checked or regions <= set(checked), f"{key}: a Region without a 'checked' entry"
            for region, record in checked.items():
                assert record["status"] in STATUSES, (key, region)
                assert record["url"].startswith("https://"), (key, region)
                assert len(record["read_on"]) == 10 and record["read_on"] <= prices.read_on, (key, region)
                # what was read, or why nothing was
                assert record.get("why" if record["status"] == "unconfirmed" else "note"), (key, region)


def test_the_figures_read_on_aws_pages_are_the_tables() -> None:
    """The rates quoted as page text (see each price's 'checked'), converted by hand to the table's units."""
    prices = Prices.load()
    assert prices.fixed_price("public_ipv4_hour", "eu-west-1") == 0.005  # "In-use Public IPv4 Address $0.005"
    assert prices.fixed_price("alb_hour", "us-east-1") == 0.0225  # ELB page's US-East-1 example
    assert prices.fixed_price("nat_gateway_hour", "eu-west-1") == 0.048  # EU-NatGateway-Hours, Price List
    # Fargate's page gives per-second rates for N. Virginia: $0.000011244 per vCPU-second, $0.000001235 per GB-second
    assert prices.fixed_price("fargate_vcpu_hour", "us-east-1") == pytest.approx(0.000011244 * 3600, abs=1e-5)
    assert prices.fixed_price("fargate_gb_hour", "us-east-1") == pytest.approx(0.000001235 * 3600, abs=2e-6)
    assert prices.fixed_price("waf_web_acl_month", "eu-central-1") == 5.0  # the same in every Region
    assert prices.fixed_price("waf_rule_month", "eu-west-1") == 1.0
    assert prices.fixed_price("kms_key_month", "eu-west-1") == 1.0
    assert prices.fixed_price("secret_month", "eu-west-1") == 0.4
    assert prices.usage_price("waf_requests_million", "us-east-1") == 0.6
    for key, region in (("public_ipv4_hour", "eu-west-1"), ("waf_rule_month", "us-east-1"), ("kms_key_month", "x")):
        assert prices.checked(key, region)["status"] == "published", key


def test_the_report_names_the_unconfirmed_prices_it_uses() -> None:
    prices = Prices.load()
    body = small_template()
    del body["Resources"]["Reader"]  # an instance class the shipped table prices only unconfirmed
    estimate = cost.estimate("test", [StackInput("s", "eu-west-1", body)], prices)
    unconfirmed = {(key, region) for key, region, _ in estimate.unconfirmed(prices)}
    assert ("fargate_spot_factor", "eu-west-1") in unconfirmed  # the Spot lines use the factor, an assumption
    assert ("health_check_month", "eu-west-1") in unconfirmed
    assert ("public_ipv4_hour", "eu-west-1") not in unconfirmed  # published
    assert ("nat_gateway_hour", "eu-west-1") not in unconfirmed  # published (Price List)
    keys = {key for line in estimate.lines for key in line.keys}
    assert {key for key, _ in unconfirmed} <= keys  # only prices the figure uses


# --- a change of settings changes the estimate by what it adds ------------------------------------


def test_one_more_task_in_settings_costs_one_spot_task(settings_dir: Path) -> None:
    """dev runs entirely on Spot (capacity: spot_weight 1): api's second task (0.5 vCPU, 1 GB) costs a month of
    Spot at eu-west-1's prices, worked out by hand: 730 h x (0.5 x $0.04048 + 1 x $0.004445) x 0.3 = $5.406."""
    before = _fixed_cost(settings_dir, "dev")
    edit_yaml(settings_dir / "dev.yaml", services__api__desired_count=2)
    after = _fixed_cost(settings_dir, "dev")
    assert after - before == pytest.approx(730 * (0.5 * 0.04048 + 1 * 0.004445) * 0.3)
    assert round(after - before, 2) == 5.41


def test_a_third_zone_in_settings_costs_what_a_zone_holds(settings_dir: Path) -> None:
    """staging has a NAT gateway per zone, four interface endpoints and an internet-facing load balancer: a third
    zone adds a NAT gateway and its address, an endpoint zone for each endpoint, the load balancer's third
    address and the new NAT gateway's two alarms (port allocation, dropped packets): at eu-west-1's prices
    730 h x ($0.048 + $0.005 + 4 x $0.011 + $0.005) + 2 x $0.10 = $74.46 + $0.20 = $74.66."""
    before = _fixed_cost(settings_dir, "staging")
    edit_yaml(
        settings_dir / "staging.yaml",
        network__availability_zones=3,
        network__subnets={
            "public": ["10.20.0.0/24", "10.20.1.0/24", "10.20.2.0/24"],
            "private": ["10.20.16.0/20", "10.20.32.0/20", "10.20.48.0/20"],
            "data": ["10.20.64.0/24", "10.20.65.0/24", "10.20.66.0/24"],
        },
    )
    after = _fixed_cost(settings_dir, "staging")
    assert after - before == pytest.approx(730 * (0.048 + 0.005 + 4 * 0.011 + 0.005) + 2 * 0.10)
    assert round(after - before, 2) == 74.66


def test_compare_shows_the_change_per_stack() -> None:
    dev = cost.read_folder(GOLDEN / "dev")
    body = json.loads((GOLDEN / "dev" / "svc-api.json").read_text(encoding="utf-8"))
    body["Resources"]["Service"]["Properties"]["DesiredCount"] += 1
    api = cost.estimate("dev", [StackInput("shop-dev-svc-api", "eu-west-1", body)])
    lines = tuple(line for line in dev.lines if line.stack != "shop-dev-svc-api") + api.lines
    after = cost.Estimate("dev", lines, dev.usage, dev.stacks, dev.read_on)
    delta = after.total - dev.total
    assert delta == pytest.approx(730 * (0.5 * 0.04048 + 1 * 0.004445) * 0.3)  # one more Spot task, by hand
    report = cost.compare([dev], [after])
    assert f"  dev          +{cost.money(delta)} ({cost.money(dev.total)} -> {cost.money(after.total)})" in report
    assert f"      {'shop-dev-svc-api':<40} +{cost.money(delta)}" in report
    assert not any("shop-dev-svc-web" in line for line in report)  # only what differs


def test_the_readmes_make_cost_example_is_what_make_cost_prints(generated: Generated) -> None:
    # The README shows `make cost` on the shipped settings (the fixtures build the same templates):
    # its table of folders and each folder's total line must be today's figures, not an earlier build's.
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    example = readme.split("$ make cost\n", 1)[1].split("```", 1)[0]
    status, out, err = generate_main("cost", "--output", str(generated.output))
    assert status == 0, err
    shown = [
        line for line in example.splitlines() if line.startswith("  ") and line.rstrip().endswith(tuple("0123456789"))
    ]
    rows = [line for line in shown if line.split()[0] in ("dev", "dr", "prod", "project", "staging")]
    assert len(rows) == 5, example
    for line in rows:
        assert line in out.splitlines(), line
    totals = [line for line in example.splitlines() if " a month fixed" in line]
    assert totals and all(line in out.splitlines() for line in totals), totals


def test_every_route53_health_check_of_the_failover_is_priced() -> None:
    """Route 53 bills every health check, CALCULATED and CLOUDWATCH_METRIC ones included; only the
    HTTPS check that makes requests has an optional feature (HTTPS) (Route 53 pricing, "Health checks")."""
    body = BUILT.stacks["prod"]["dns"].body
    checks = resources(body, "AWS::Route53::HealthCheck")
    assert len(checks) == 5  # gate, primary, load balancer, and one per colour (no calculated over calculated)
    lines = {line.item: line for line in priced(body).lines if line.item.startswith("health check ")}
    for name in checks:
        assert lines[f"health check {name}"].quantity == 1, name
    features = {item: line.quantity for item, line in lines.items() if item.endswith(": optional features")}
    with_features = {item for item, quantity in features.items() if quantity}
    assert with_features == {"health check LoadBalancerHealthCheck: optional features"}


def test_a_folder_in_a_region_without_prices_leaves_the_others_figures(tmp_path: Path) -> None:
    """From a second new user's trial: one environment in a region the price table lacks made `cost`
    print nothing for any; now the others are estimated and the folder left out is named (exit 1)."""
    output = tmp_path / "output"
    shutil.copytree(GOLDEN, output, ignore=shutil.ignore_patterns("*.png", "*.svg"))
    manifest = output / "staging" / "manifest.json"
    data = json.loads(manifest.read_text())
    for stack in data["stacks"]:
        if stack["region"] == "eu-west-1" and stack["scope"] != "project":
            stack["region"] = "sa-east-1"
    data["region"] = "sa-east-1"
    manifest.write_text(json.dumps(data))
    result = _main("--output", str(output))
    assert result.returncode == 1
    assert "dev " in result.stdout and "prod " in result.stdout and "staging " not in result.stdout
    assert "cost: staging left out: no prices for region sa-east-1" in result.stderr
