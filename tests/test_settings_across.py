"""Rules across environments (DNS names one environment owns, VPC ranges apart) and refusals that
report every problem of a file in one run (a new user's trial: a new service took 3 runs, tags 4)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from conftest import edit_yaml, refusal

from infra_templates.config import PATTERN_WORDS, Environment, SettingsError, load_settings


def _problems(settings_dir: Path) -> list[str]:
    with pytest.raises(SettingsError) as caught:
        load_settings(settings_dir)
    return caught.value.problems


def _add_qa_as_the_readme_says(settings_dir: Path) -> Path:
    """README "Adding an environment", followed literally: staging's file copied, its account,
    range and alias changed, its origin name forgotten."""
    qa = settings_dir / "qa.yaml"
    text = (settings_dir / "staging.yaml").read_text()
    text = text.replace("222222222222", "555555555555").replace("10.20.", "10.50.")
    qa.write_text(text.replace("aliases: [staging.shop", "aliases: [qa.shop"))
    return qa


def test_an_origin_name_copied_from_another_environment_is_refused_in_both_files(settings_dir: Path) -> None:
    qa = _add_qa_as_the_readme_says(settings_dir)
    problems = _problems(settings_dir)
    staging = settings_dir / "staging.yaml"
    assert [p.split(": is also ")[0] for p in problems] == [
        f"{qa}: edge.origin_domain = 'origin.staging.shop.example.com'",
        f"{staging}: edge.origin_domain = 'origin.staging.shop.example.com'",
    ]
    assert f"is also staging's edge.origin_domain ({staging})" in problems[0]
    assert "DEPLOY.md of each would point it at its own" in problems[0]
    # the fix is all it takes
    edit_yaml(qa, edge__origin_domain="origin.qa.shop.example.com")
    environments, _, _ = load_settings(settings_dir)
    assert [e.name for e in environments] == ["dev", "dr", "prod", "qa", "staging"]


def test_the_failover_name_of_a_dr_pair_is_not_another_environments_origin(settings_dir: Path) -> None:
    # origin.shop.example.com: prod's origin name, which prod's dns stack holds as failover records
    edit_yaml(settings_dir / "staging.yaml", edge__origin_domain="origin.shop.example.com")
    problems = _problems(settings_dir)
    assert any(
        p.startswith(
            f"{settings_dir / 'staging.yaml'}: edge.origin_domain = 'origin.shop.example.com': is also "
            f"prod's edge.origin_domain ({settings_dir / 'prod.yaml'}, which prod's dns stack holds as Route 53 "
            "failover records)"
        )
        for p in problems
    )


def test_a_dr_environment_sharing_its_primarys_origin_name_is_told_why(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dr.yaml", edge__origin_domain="origin.shop.example.com")
    problems = _problems(settings_dir)
    line = next(p for p in problems if p.startswith(f"{settings_dir / 'dr.yaml'}: edge.origin_domain"))
    assert "a DR pair shares no name: prod's origin name fails over to dr's load balancer" in line


def test_an_origin_name_that_is_a_viewer_alias_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", edge__origin_domain="staging.shop.example.com")
    edit_yaml(settings_dir / "dr.yaml", edge__origin_domain="www.shop.example.com")
    problems = _problems(settings_dir)
    assert (
        f"{settings_dir / 'staging.yaml'}: edge.origin_domain = 'staging.shop.example.com': is this environment's "
        "own viewer alias (edge.aliases[0]): CloudFront would send its origin requests to itself"
    ) in "\n".join(problems)
    assert (
        f"{settings_dir / 'dr.yaml'}: edge.origin_domain = 'www.shop.example.com': is prod's viewer alias "
        f"(edge.aliases[1] in {settings_dir / 'prod.yaml'})"
    ) in "\n".join(problems)


def test_the_shipped_dr_pair_names_are_accepted(settings_dir: Path) -> None:
    environments, _, _ = load_settings(settings_dir)
    by_name = {e.name: e for e in environments}
    assert by_name["prod"].standby is not None and by_name["prod"].standby.dns is not None
    names = [e.edge.origin_domain for e in environments]
    assert len(set(names)) == len(names)


def test_a_dr_range_overlapping_its_primarys_cites_the_vpc_peering_rule(settings_dir: Path) -> None:
    dr = settings_dir / "dr.yaml"
    dr.write_text(dr.read_text().replace("10.40.", "10.30."))
    problems = _problems(settings_dir)
    assert problems == [
        f"{settings_dir / 'prod.yaml'}: network.cidr = '10.30.0.0/16': overlaps dr's network.cidr 10.30.0.0/16 "
        f"({dr}); a DR pair's VPCs are peered, and AWS fails a VPC peering connection between VPCs whose IPv4 "
        "CIDR blocks overlap (Amazon VPC Peering Guide, 'Create a VPC peering connection'); give the one not "
        "deployed yet a range no other environment uses, with network.subnets inside it (a deployed VPC's new range "
        "replaces the VPC)"
    ]


def test_overlapping_ranges_of_unrelated_environments_are_refused(settings_dir: Path) -> None:
    staging = settings_dir / "staging.yaml"
    # 10.10.0.0/16 is dev's; a /20 inside it overlaps too
    staging.write_text(
        staging.read_text()
        .replace("cidr: 10.20.0.0/16", "cidr: 10.10.0.0/20")
        .replace("10.20.16.0/20, 10.20.32.0/20", "10.10.4.0/24, 10.10.5.0/24")
        .replace("10.20.64.0/24, 10.20.65.0/24", "10.10.6.0/24, 10.10.7.0/24")
        .replace("10.20.0.0/24, 10.20.1.0/24", "10.10.0.0/24, 10.10.1.0/24")
    )
    problems = _problems(settings_dir)
    assert len(problems) == 1
    assert problems[0].startswith(
        f"{staging}: network.cidr = '10.10.0.0/20': overlaps dev's network.cidr 10.10.0.0/16 "
        f"({settings_dir / 'dev.yaml'}); every environment has its own range"
    )


def test_a_new_web_service_missing_its_counts_is_one_run_saying_what_each_takes(settings_dir: Path) -> None:
    path = settings_dir / "dev.yaml"
    text = path.read_text().replace(
        "\nservices:\n",
        "\nservices:\n  admin:\n    port: 8081\n    cpu: 256\n    memory: 512\n"
        "    routing: {paths: ['/admin/*']}\n    health_check: {path: /admin/health}\n",
        1,
    )
    path.write_text(text)
    problems = refusal(settings_dir, "dev").splitlines()
    assert problems == [
        f"{path}: services.admin.autoscaling: is required for a web service (kind: web): a mapping of min, max, and "
        "optionally cpu_target, requests_per_target",
        f"{path}: services.admin.desired_count: is required for a web service (kind: web): tasks at creation, 0 to "
        "1000",
    ]


def test_every_tag_problem_is_reported_in_one_run(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dev.yaml", tags={"Owner": 12, "Project": "x", "aws:foo": "y", "Team": "shop"})
    path = settings_dir / "dev.yaml"
    assert refusal(settings_dir, "dev").splitlines() == [
        f"{path}: tags.Owner = 12: a tag value is a string: quote it in YAML (Owner: '12')",
        f"{path}: tags.Project = 'x': is set by the generator (Project, Environment, Layer and ManagedBy are); use "
        "another key",
        f"{path}: tags.aws:foo = 'y': tag keys are 1-128 characters and must not start with 'aws:'",
    ]


def test_tags_written_as_a_list_are_told_they_are_a_mapping(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dev.yaml", tags=["a", "b"])
    assert refusal(settings_dir, "dev") == (
        f"{settings_dir / 'dev.yaml'}: tags: takes a mapping of tag key to value, one a line (Owner: team-shop), "
        "not a list"
    )


def test_a_misspelt_kind_does_not_hide_a_call_to_no_service(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "dev.yaml",
        services={"admin": {"kind": "webb", "cpu": 256, "memory": 512, "calls": ["nobody", "payments"]}},
    )
    problems = refusal(settings_dir, "dev").splitlines()
    assert any("services.admin.kind = 'webb': input should be 'web'" in p for p in problems)
    assert any(
        p.endswith(
            "services.admin.calls[0] = 'nobody': is not a service; services are admin, api, mailer, "
            "nightly, payments, web"
        )
        for p in problems
    )
    assert not any("calls[1]" in p for p in problems)  # payments is a service: its kind is judged once kind is valid
    assert len(problems) == 2


def test_an_invalid_subnet_does_not_hide_another_outside_the_vpc(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dev.yaml", network__subnets__private=["10.10.16.0/33", "10.99.32.0/20"])
    path = settings_dir / "dev.yaml"
    problems = refusal(settings_dir, "dev").splitlines()
    assert problems == [
        f"{path}: network.subnets.private[0] = '10.10.16.0/33': is not a valid IPv4 CIDR block ('33' is not a valid "
        "netmask)",
        f"{path}: network.subnets.private[1] = '10.99.32.0/20': is outside the VPC's CIDR block 10.10.0.0/16; pick a "
        "range inside it",
    ]


def test_an_invalid_vpc_range_gives_no_knock_on_subnet_lines(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dev.yaml", network__cidr="10.10.0.0/33")
    problems = refusal(settings_dir, "dev").splitlines()
    assert len(problems) == 1 and "network.cidr = '10.10.0.0/33'" in problems[0]


def test_a_missing_mapping_says_its_keys(settings_dir: Path) -> None:
    path = settings_dir / "dev.yaml"
    edit_yaml(path, network__subnets=None)
    data = path.read_text().replace("  subnets: null\n", "")
    path.write_text(data)
    assert (
        f"{path}: network.subnets: is required and set neither in this file nor in defaults.yaml; it takes a mapping "
        "of public, private, data"
    ) in refusal(settings_dir, "dev").splitlines()


@pytest.mark.parametrize("kind", ["folder", "broken link"])
def test_a_qa_yaml_that_is_no_file_is_said_to_be_what_it_is(settings_dir: Path, kind: str) -> None:
    qa = settings_dir / "qa.yaml"
    if kind == "folder":
        qa.mkdir()
        expected = f"{qa}: is a folder, not an environment file (a YAML file): rename or remove it"
    else:
        os.symlink("nowhere.yaml", qa)
        expected = f"{qa}: is a symbolic link to nowhere.yaml, which is not there: point it at an environment file "
        expected += "or remove it"
    assert refusal(settings_dir, "qa") == expected
    assert _problems(settings_dir) == [expected]  # a build of all says so too: nothing is silently skipped
    shutil.rmtree(qa) if kind == "folder" else qa.unlink()
    load_settings(settings_dir)


def test_patterns_are_said_in_words(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dev.yaml", edge__origin_domain="Origin_Dev.example.com")
    message = refusal(settings_dir, "dev")
    assert "edge.origin_domain = 'Origin_Dev.example.com': is not a host name in lower case" in message
    assert "should match pattern" not in message


def test_every_pattern_said_in_words_is_a_settings_pattern() -> None:
    schema = str(Environment.model_json_schema())
    patterns = set(re.findall(r"'pattern': '((?:[^'\\]|\\.)*)'", schema))
    unescaped = {p.encode().decode("unicode_escape") for p in patterns}
    assert set(PATTERN_WORDS) <= unescaped, set(PATTERN_WORDS) - unescaped


def test_an_unknown_stage_lists_environments_in_words(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "defaults.yaml", delivery__stages=["dev", "qa", "staging", "prod"])
    assert any(p.endswith("environments are dev, dr, prod, staging") for p in _problems(settings_dir))
    edit_yaml(settings_dir / "defaults.yaml", delivery__stages=["dev", "staging"])
    assert any(
        p.endswith(
            "approval_before[0] = 'prod': is not one of delivery.stages (dev, staging) (every environment: "
            "dev, dr, prod, staging)"
        )
        for p in _problems(settings_dir)
    )


def test_two_environments_in_one_account_and_region_cannot_both_create_one_ses_identity(settings_dir: Path) -> None:
    staging = settings_dir / "staging.yaml"
    # prod's account and region, prod's sender: its monitoring stack would create prod's identity again
    edit_yaml(
        staging,
        account_id="333333333333",
        platform__certificate_arn="arn:aws:acm:eu-west-1:333333333333:certificate/22222222-2222-2222-2222-222222222222",
        edge__certificate_arn="arn:aws:acm:us-east-1:333333333333:certificate/22222222-2222-2222-2222-222222222223",
        monitoring__ses_email={"enabled": True, "sender": "alarms@shop.example.com", "recipients": ["a@example.com"]},
    )
    problems = _problems(settings_dir)
    assert problems == [
        f"{settings_dir / 'staging.yaml'}: monitoring.ses_email.sender = 'alarms@shop.example.com': is also prod's, "
        "in the same account (333333333333) and region (eu-west-1); each environment's monitoring stack creates the "
        "SES identity of its sender, and an account holds one per address in a region, so the second stack would "
        "fail: give this environment another sender"
    ]
    # dr: prod's account, another region: the shipped settings load
    edit_yaml(staging, monitoring__ses_email__sender="staging-alarms@shop.example.com")
    load_settings(settings_dir)


def test_a_new_service_missing_settings_still_hears_of_its_call_to_no_service(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "dev.yaml",
        services={
            "admin": {
                "port": 8081,
                "cpu": 256,
                "memory": 512,
                "routing": {"paths": ["/admin/*"]},
                "calls": ["paymnets"],
            }
        },
    )
    problems = refusal(settings_dir, "dev").splitlines()
    assert [p.split(": ", 2)[1] for p in problems] == [
        "services.admin.autoscaling",
        "services.admin.calls[0] = 'paymnets'",
        "services.admin.desired_count",
    ]
    assert "is not a service; did you mean 'payments'?" in problems[1]


def test_every_bad_item_of_a_list_or_mapping_is_reported(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", edge__aliases=["Bad_Name", "staging.shop.example.com", "also bad"])
    problems = refusal(settings_dir).splitlines()
    assert [p.split(": ", 2)[1] for p in problems] == ["edge.aliases[0] = 'Bad_Name'", "edge.aliases[2] = 'also bad'"]
    edit_yaml(settings_dir / "staging.yaml", edge__aliases=["staging.shop.example.com"])
    edit_yaml(
        settings_dir / "staging.yaml",
        services={
            "web": {
                "secrets": {"A": "plain-value", "B": "ssm:/x", "C": "secretsmanager:shop/key"},
                "routing": {"paths": ["api", "/ok", "x"]},
            }
        },
    )
    fields = [p.split(": ", 2)[1].split(" = ")[0] for p in refusal(settings_dir).splitlines()]
    assert fields == [
        "services.web.routing.paths[0]",
        "services.web.routing.paths[2]",
        "services.web.secrets.A",
        "services.web.secrets.C",
    ]


def test_a_defaults_yaml_that_is_a_folder_is_said_to_be_one(settings_dir: Path) -> None:
    defaults = settings_dir / "defaults.yaml"
    defaults.unlink()
    defaults.mkdir()
    expected = f"{defaults}: is a folder, not the file of the settings every environment shares (a YAML file): "
    expected += "rename or remove it"
    assert refusal(settings_dir, "dev") == expected
    assert _problems(settings_dir) == [expected]


def test_a_rule_across_settings_runs_beside_a_setting_that_failed_its_own_check(settings_dir: Path) -> None:
    # tags fails its own check; the edge's certificate rule reads only valid settings: both in one run
    edit_yaml(
        settings_dir / "staging.yaml",
        tags={"Owner": 12},
        edge__certificate_arn="arn:aws:acm:eu-west-1:222222222222:certificate/22222222-2222-2222-2222-222222222223",
    )
    fields = [p.split(": ", 2)[1].split(" = ")[0] for p in refusal(settings_dir).splitlines()]
    assert fields == ["edge.certificate_arn", "tags.Owner"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"region": "eu-wst-1"}, "region"),  # the certificate and zone rules read the region
        ({"production": "yes"}, "production"),  # the production rules read it
        ({"account_id": "1234"}, "account_id"),  # the certificate rules compare accounts
    ],
)
def test_a_rule_reading_a_failed_setting_says_nothing(settings_dir: Path, change: dict[str, str], field: str) -> None:
    edit_yaml(settings_dir / "prod.yaml", **change)
    problems = refusal(settings_dir, "prod").splitlines()
    assert len(problems) == 1, problems
    assert problems[0].split(": ", 2)[1].startswith(f"{field} = ")


def test_a_copied_origin_name_is_reported_beside_another_files_mistake(settings_dir: Path) -> None:
    qa = _add_qa_as_the_readme_says(settings_dir)
    qa.write_text(qa.read_text().replace("region: eu-west-1", "regoin: eu-west-1"))  # qa does not load
    edit_yaml(settings_dir / "dev.yaml", edge__origin_domain="origin.staging.shop.example.com")
    problems = _problems(settings_dir)
    assert any(p.startswith(f"{qa}: regoin = 'eu-west-1': is not a known setting") for p in problems), problems
    assert any(p.startswith(f"{settings_dir / 'dev.yaml'}: edge.origin_domain") for p in problems)
    assert any(p.startswith(f"{settings_dir / 'staging.yaml'}: edge.origin_domain") for p in problems)


def test_a_refused_file_still_takes_part_in_the_rules_across_environments(settings_dir: Path) -> None:
    """From a second new user's trial: a typo anywhere in dev's file hid that dev copied prod's origin
    name, and dev's range overlapping staging's was left for a run after dev's subnets were fixed. A
    refused file's range, origin name and aliases still meet the other environments' in the same run;
    a value its own check refuses (an unparsable range) is left out, never judged."""
    edit_yaml(
        settings_dir / "dev.yaml",
        network__nat_gateways="singel",
        edge__origin_domain="origin.shop.example.com",
        network__cidr="10.20.0.0/20",
    )
    problems = _problems(settings_dir)
    assert any("dev.yaml: network.nat_gateways = 'singel'" in p for p in problems)
    assert any("dev.yaml: edge.origin_domain = 'origin.shop.example.com': is also prod's" in p for p in problems)
    assert any("network.cidr" in p and "overlaps" in p and "staging" in p and "dev" in p for p in problems)
    edit_yaml(settings_dir / "dev.yaml", network__cidr="10.20.0.0/99")  # refused by its own check: not compared
    problems = _problems(settings_dir)
    assert not any("overlaps" in p for p in problems)
    assert any("dev.yaml: network.cidr = '10.20.0.0/99'" in p for p in problems)
