"""The architecture diagram: drawn from the templates, arrows exactly where the security groups
allow traffic, DOT source pinned by golden files, SVG and PNG byte-identical across runs."""

from __future__ import annotations

import copy
import html
import json
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import BUILT, ENVIRONMENTS, ROOT, Generated

from infra_templates import diagram

GOLDEN = ROOT / "tests" / "golden"


def built_stacks(env: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The manifest and template bodies of one folder (an environment, or "project"), as written
    to output/: the manifest may name stacks of other folders (the project's, a DR primary's)."""
    described = json.loads(BUILT.files[env]["manifest.json"])
    everything = [*BUILT.project_stacks.values(), *(s for stacks in BUILT.stacks.values() for s in stacks.values())]
    bodies = {s.name: s.body for s in everything}
    return described, {entry["name"]: bodies[entry["name"]] for entry in described["stacks"]}


def draw(env: str, bodies: dict[str, dict[str, Any]] | None = None, detail: str = "traffic") -> diagram.Diagram:
    described, built = built_stacks(env)
    docs = diagram.stack_docs(described, bodies or built, BUILT.project.account_id)
    return diagram.build(described, docs, "all" if env == "project" else detail)


def without(env: str, stack: str, logical: str) -> diagram.Diagram:
    """The diagram after removing one resource (a rule) from a copy of one template."""
    _, bodies = built_stacks(env)
    bodies = copy.deepcopy(bodies)
    del bodies[stack]["Resources"][logical]
    return draw(env, bodies)


PROD = "shop-prod"
ALB = f"{PROD}-platform/LoadBalancer"
DATABASE = f"{PROD}-data/Cluster"


def service(name: str) -> str:
    """The node of a service: its ECS service, or a job's schedule (which runs its tasks)."""
    kind = BUILT.environments["prod"].services[name].kind
    return f"{PROD}-svc-{name}/{'Schedule' if kind == 'job' else 'Service'}"


def test_prod_draws_every_service_the_database_alb_cdn_and_bucket() -> None:
    drawn = draw("prod")
    for name, settings in BUILT.environments["prod"].services.items():
        assert service(name) in drawn.nodes
        # a job has no ECS service: its schedule runs each task in the service's place
        expected = "EventBridge Scheduler schedule" if settings.kind == "job" else "ECS service"
        assert drawn.nodes[service(name)].startswith(expected + "\\n")
    assert drawn.nodes[DATABASE].startswith("Aurora cluster\\n")
    assert drawn.nodes[ALB].startswith("load balancer\\n")
    assert drawn.nodes[f"{PROD}-edge/Distribution"].startswith("CloudFront distribution\\n")
    assert drawn.nodes[f"{PROD}-edge/AssetsBucket"].startswith("S3 bucket\\n")
    # the CDN serves the bucket (a reference in its template)
    assert (f"{PROD}-edge/Distribution", f"{PROD}-edge/AssetsBucket", "ref") in drawn.references


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_one_node_per_subnet_tier_and_zone(env) -> None:
    drawn = draw(env)
    zones = "abc"[: BUILT.environments[env].network.availability_zones]
    assert set(drawn.subnets) == {(tier, zone) for tier in ("public", "private", "data") for zone in zones}
    for (tier, zone), node in drawn.subnets.items():
        assert drawn.place[node][-1] == f"zone {zone}"  # zones are the columns
        assert drawn.tier[node] == tier  # tiers the rows


def test_resources_sit_in_the_tier_of_their_subnets_and_regions_are_clusters() -> None:
    drawn = draw("prod")
    assert drawn.tier[ALB] == "public"
    assert drawn.tier[DATABASE] == "data"
    assert all(drawn.tier[service(n)] == "private" for n in BUILT.environments["prod"].services)
    assert drawn.place[ALB][-1].startswith("VPC ")  # in its VPC, on its tier's row
    assert drawn.place[f"{PROD}-edge-waf/WebAcl"][0] == "account 333333333333, us-east-1"
    registry = BUILT.project
    project = draw("project")
    assert project.place["shop-registry/RegistryKey"][0] == f"account {registry.account_id}, {registry.region}"


def test_arrows_follow_the_security_groups() -> None:
    drawn = draw("prod")
    services = BUILT.environments["prod"].services
    for name, settings in services.items():
        assert drawn.arrows(ALB, service(name)) == ([f"tcp {settings.port}"] if settings.kind == "web" else [])
        assert drawn.arrows(service(name), ALB) == []
        expected = [f"tcp {BUILT.environments['prod'].database.port}"] if settings.database_access else []
        assert drawn.arrows(service(name), DATABASE) == expected
    assert any(s.database_access for s in services.values())
    assert not all(s.database_access for s in services.values())  # both cases above were exercised
    # Behind CloudFront (the default): CloudFront's origin-facing list on 443, nothing from the internet.
    assert drawn.arrows("peer:prefix list CloudFront", ALB) == ["tcp 443"]
    assert drawn.arrows("peer:0.0.0.0/0", ALB) == []
    # service to service: api calls the payments backend through Service Connect, and nothing else does
    assert drawn.arrows(service("api"), service("payments")) == ["tcp 9000"]
    assert drawn.arrows(service("web"), service("payments")) == []


@pytest.mark.parametrize(
    ("stack", "rule", "source", "target"),
    [
        ("svc-api", "ServiceFromAlbIngress", ALB, service("api")),  # the service no longer admits the ALB
        ("svc-api", "AlbToServiceEgress", ALB, service("api")),  # the ALB may no longer send to it
        ("svc-api", "DatabaseFromServiceIngress", service("api"), DATABASE),
        ("svc-api", "ServiceToDatabaseEgress", service("api"), DATABASE),
    ],
)
def test_removing_a_rule_removes_its_arrow_and_only_it(stack, rule, source, target) -> None:
    before = draw("prod")
    after = without("prod", f"{PROD}-{stack}", rule)
    assert before.arrows(source, target)
    assert after.arrows(source, target) == []
    assert after.flows == {f for f in before.flows if (f[0], f[1]) != (source, target)}


def test_a_group_without_egress_rules_keeps_aws_allow_all_egress() -> None:
    _, bodies = built_stacks("prod")
    bodies = copy.deepcopy(bodies)
    del bodies[f"{PROD}-svc-api"]["Resources"]["AlbToServiceEgress"]
    del bodies[f"{PROD}-security"]["Resources"]["AlbSecurityGroup"]["Properties"]["SecurityGroupEgress"]  # all out
    assert draw("prod", bodies).arrows(ALB, service("api")) == ["tcp 8000"]


def test_a_cloudfront_only_alb_is_reached_from_the_prefix_list() -> None:
    _, bodies = built_stacks("prod")
    bodies = copy.deepcopy(bodies)
    rule = bodies[f"{PROD}-security"]["Resources"]["AlbHttpsIngress"]["Properties"]
    rule["SourcePrefixListId"] = "pl-4fa04526"  # an id given in the settings instead of the lookup
    drawn = draw("prod", bodies)
    assert drawn.arrows("peer:pl-4fa04526", ALB) == ["tcp 443"]
    assert drawn.arrows("peer:prefix list CloudFront", ALB) == []


def test_a_new_layer_appears_by_resource_type() -> None:
    """Resources of types the diagram never heard of are drawn; many of one type become one node."""
    _, bodies = built_stacks("prod")
    bodies = copy.deepcopy(bodies)
    platform = bodies[f"{PROD}-platform"]["Resources"]
    platform["Alerts"] = {"Type": "AWS::SNS::Topic", "Properties": {}}
    for i in range(5):
        platform[f"Alarm{i}"] = {"Type": "AWS::CloudWatch::Alarm", "Properties": {"AlarmActions": [{"Ref": "Alerts"}]}}
    drawn = draw("prod", bodies, detail="all")
    assert "SNS topic" in drawn.nodes[f"{PROD}-platform/Alerts"]
    alarms = f"{PROD}-platform/AWS::CloudWatch::Alarm"
    assert drawn.nodes[alarms].startswith("5 x CloudWatch alarm")
    platform["Odd"] = {"Type": "AWS::Foo::Bar", "Properties": {}}  # a type without a readable name: its own
    assert draw("prod", bodies, detail="all").nodes[f"{PROD}-platform/Odd"].startswith("Foo Bar\\n")
    assert (alarms, f"{PROD}-platform/Alerts", "ref") in drawn.references


@pytest.mark.parametrize("env", [*ENVIRONMENTS, "project"])
def test_every_drawn_resource_has_a_readable_label(env) -> None:
    """Every type any sheet of the examples draws (every resource, not only the traffic paths) has
    a name people use (READABLE), not its CloudFormation type: a new type fails here until named."""
    drawn = draw(env, detail="all")
    _, bodies = built_stacks(env)
    for node, label in drawn.nodes.items():
        if node.startswith("peer:") or node in drawn.subnets.values():
            continue
        stack, logical = node.split("/", 1)
        resource = bodies[stack]["Resources"].get(logical)
        type_ = resource["Type"] if resource else logical  # a collapsed node is named by its type
        assert type_ in diagram.READABLE, f"{node}: add {type_} to diagram.READABLE"
        assert label.split("\\n")[0].split(" x ", 1)[-1] == diagram.READABLE[type_], (node, label)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_nat_gateway_is_drawn_with_the_routes_through_it(env) -> None:
    drawn = draw(env)
    _, bodies = built_stacks(env)
    nats = {
        f"{name}/{logical}"
        for name, body in bodies.items()
        if name.startswith(f"shop-{env}-")
        for logical, resource in body["Resources"].items()
        if resource["Type"] == "AWS::EC2::NatGateway"
    }
    assert nats, "every fixture environment has NAT gateways"
    for nat in nats:
        assert drawn.nodes[nat].startswith("NAT gateway\\n")
        assert drawn.tier[nat] == "public" and drawn.place[nat][-1].startswith("zone ")  # in its zone's column
        assert (nat, "peer:0.0.0.0/0", f"{diagram.ROUTE}to the Internet") in drawn.references
    private = {node for (tier, _), node in drawn.subnets.items() if tier == "private"}
    routed = {source for source, target, kind in drawn.references if target in nats and kind.startswith(diagram.ROUTE)}
    assert routed == private  # every private subnet's default route leads to a NAT gateway


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_cloudfronts_load_balancer_origin_leads_to_the_load_balancer(env) -> None:
    drawn = draw(env)
    origin = f"peer:{BUILT.environments[env].edge.origin_domain}"
    assert (f"shop-{env}-edge/Distribution", origin, "origin load-balancer (https-only)") in drawn.references
    assert (origin, f"shop-{env}-platform/LoadBalancer", diagram.ORIGIN_RECORD) in drawn.references


def test_each_sheet_draws_its_own_stacks_only() -> None:
    """The project's stacks have their own sheet; a DR partner's stacks are on the partner's."""
    prod, project, dr = draw("prod", detail="all"), draw("project"), draw("dr", detail="all")
    stacks = {node.split("/")[0] for node in prod.nodes if not node.startswith("peer:")}
    assert stacks and all(name.startswith(f"{PROD}-") for name in stacks)
    assert {node.split("/")[0] for node in project.nodes} >= {"shop-registry", "shop-delivery"}
    assert not any(node.startswith(f"{PROD}-") for node in dr.nodes)


def test_traffic_paths_by_default_everything_on_request() -> None:
    traffic, everything = draw("prod"), draw("prod", detail="all")
    assert traffic.flows == everything.flows  # every security-group arrow is a traffic path
    assert set(traffic.nodes) < set(everything.nodes)
    # only the CDN's origins (and the load balancer its origin name leads to) and the routes out
    others = [r for r in traffic.references if r[0] != f"{PROD}-edge/Distribution"]
    assert others and all(kind.startswith(diagram.ROUTE) or kind == diagram.ORIGIN_RECORD for _, _, kind in others)
    assert len(traffic.flows) + len(traffic.references) < 40 < len(everything.flows) + len(everything.references)
    assert f"{PROD}-keys/DataKey" in everything.nodes and f"{PROD}-keys/DataKey" not in traffic.nodes
    with pytest.raises(diagram.DiagramError):
        draw("prod", detail="some")


def test_the_legend_names_what_the_sheet_draws() -> None:
    source = diagram.dot_source(draw("prod"))
    assert "<B>Legend</B> (traffic)" in source
    assert "traffic the security groups allow" in source and "a CDN origin given as a host name" in source
    assert "trapezium" in source.split("<B>Legend</B>")[1] and "load balancer" in source
    assert "security groups allow" not in diagram.dot_source(draw("project"))  # no such arrow there


@pytest.mark.parametrize("env", [*ENVIRONMENTS, "project"])
def test_dot_source_matches_golden(env) -> None:
    path = GOLDEN / env / "architecture.dot"
    assert path.is_file(), f"{path} is missing: run `make golden`"
    assert diagram.dot_source(draw(env)) == path.read_text(), "diagram changed: run `make golden`, review the diff"


def test_prods_sheet_fits_a_page_width_with_its_legend_and_zones_in_order(generated: Generated) -> None:
    """Issue 19: the sheet was 2,663 x 7,553 px with 152 edges. Needs Graphviz's dot (not skipped).
    The sheet the session's build drew (``generate.py`` draws what it writes); that ``generate.py
    diagram`` draws the same bytes is test_generate's test_the_build_draws_what_make_templates_draws."""
    drawn = {name: (generated.output / "prod" / name).read_bytes() for name in diagram.FILES}
    width, height = struct.unpack(">II", drawn["architecture.png"][16:24])  # the PNG's IHDR chunk
    assert width <= 2000 and height <= 1500, (width, height)
    text = html.unescape(drawn["architecture.svg"].decode())
    assert "Legend" in text
    xs = {zone: float(x) for x, zone in re.findall(r'<text[^>]* x="([\d.]+)"[^>]*>zone ([a-c])</text>', text)}
    assert sorted(xs, key=xs.__getitem__) == ["a", "b", "c"]  # the zones' columns, left to right
    assert text.count('class="edge"') < 60


def test_svg_and_png_are_byte_identical_across_runs(generated: Generated) -> None:
    """Needs Graphviz's dot (make test installs it): a missing dot fails here, it is not skipped.
    Prod's sheet as the session's build drew it (PYTHONHASHSEED=1). That another process with another
    hash seed draws the same bytes is asserted by test_invariants.py's
    test_output_is_byte_identical_across_runs_and_hash_seeds (the whole output, the sheets SVG and
    PNG included), and that ``generate.py diagram`` draws what the build drew by test_generate.py's
    test_the_build_draws_what_make_templates_draws: drawn again here, it was drawn four times."""
    first = {name: (generated.output / "prod" / name).read_bytes() for name in diagram.FILES}
    assert first["architecture.svg"].startswith(b"<?xml")
    assert b"Generated by graphviz" not in first["architecture.svg"]
    assert first["architecture.png"].startswith(b"\x89PNG")
    text = html.unescape(first["architecture.svg"].decode())  # Graphviz writes '-' as &#45;
    for name in BUILT.environments["prod"].services:
        assert f"shop-prod-svc-{name}" in text


def test_diagram_of_an_empty_folder_fails(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "generate.py"), "diagram", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2  # a folder option that cannot be used, as --env naming no folder
    assert "no manifest.json in any of its folders: run `make templates` first" in result.stderr


def test_a_dot_only_drawing_removes_the_images_of_an_earlier_one(generated: Generated, tmp_path: Path) -> None:
    # An SVG and PNG left beside a DOT drawn afterwards (another detail) would show another drawing.
    import shutil  # noqa: PLC0415

    for name in ("dev", "project"):  # an environment's sheet reads the project folder beside it
        shutil.copytree(generated.output / name, tmp_path / name)
    folder = tmp_path / "dev"
    assert all((folder / name).is_file() for name in diagram.FILES)  # the build drew all three
    written = diagram.write(folder, dot_only=True, detail="all")
    assert [p.name for p in written] == ["architecture.dot"]
    assert sorted(p.name for p in folder.glob("architecture.*")) == ["architecture.dot"]
    assert "subgraph" in (folder / "architecture.dot").read_text()
