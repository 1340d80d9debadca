"""Settings: the shipped files load, merging works, and every refusal names file, field and fix."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from conftest import ENVIRONMENTS, edit_yaml, refusal

from infra_templates.config import SettingsError, deep_merge, load_environment, project_of


def test_shipped_environments_are_the_four_the_platform_needs() -> None:
    assert ENVIRONMENTS == ["dev", "dr", "prod", "staging"]


def test_dr_runs_in_another_region_than_prod(environments) -> None:
    assert environments["dr"].region != environments["prod"].region


def test_environment_file_overrides_defaults_and_mappings_merge(environments) -> None:
    dev, prod = environments["dev"], environments["prod"]
    assert dev.network.nat_gateways == "single"  # dev.yaml overrides defaults' per-zone
    assert prod.network.nat_gateways == "per-zone"  # from defaults.yaml
    assert dev.network.flow_logs.traffic_type == "ALL"  # merged from defaults under a mapping dev sets
    assert dev.network.flow_logs.retention_days == 14
    assert dev.network.interface_endpoints == []  # a list replaces, it does not append
    assert prod.network.interface_endpoints == ["ecr.api", "ecr.dkr", "logs", "secretsmanager"]


def test_deep_merge_merges_mappings_and_replaces_the_rest() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert deep_merge(base, {"a": {"c": [3]}, "d": 2}) == {"a": {"b": 1, "c": [3]}, "d": 2}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}  # inputs untouched


def test_settings_are_frozen(environments) -> None:
    with pytest.raises(ValueError):
        environments["dev"].region = "us-east-1"  # type: ignore[misc]


def test_unknown_key_is_refused_with_the_valid_keys(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", network__flow_logs__trafic_type="ALL")
    message = refusal(settings_dir)
    assert "staging.yaml: network.flow_logs.trafic_type = 'ALL': is not a known setting" in message
    assert "valid keys here: retention_days, traffic_type" in message


def test_unknown_top_level_key_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", colour="blue")
    assert "staging.yaml: colour = 'blue': is not a known setting; valid keys here: account_id" in refusal(settings_dir)


def test_wrong_type_is_refused_not_coerced(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", network__availability_zones="2")
    message = refusal(settings_dir)
    assert "staging.yaml: network.availability_zones = '2': input should be a valid integer" in message


def test_malformed_cidr_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", network__cidr="10.20.0.0/33")
    assert "staging.yaml: network.cidr = '10.20.0.0/33': is not a valid IPv4 CIDR block" in refusal(settings_dir)


def test_cidr_with_host_bits_suggests_the_network(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", network__cidr="10.20.0.1/16")
    assert "did you mean '10.20.0.0/16'?" in refusal(settings_dir)


def test_overlapping_subnets_are_refused_and_both_named(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "staging.yaml",
        network__subnets__data=["10.20.64.0/24", "10.20.1.0/24"],
    )
    message = refusal(settings_dir)
    assert (
        "staging.yaml: network.subnets.data[1] = '10.20.1.0/24': overlaps network.subnets.public[1] (10.20.1.0/24)"
        in message
    )


def test_every_subnet_problem_is_reported_at_once(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "staging.yaml",
        network__subnets__data=["10.99.64.0/24", "10.98.1.0/24"],
    )
    message = refusal(settings_dir)
    assert "network.subnets.data[0] = '10.99.64.0/24': is outside the VPC's CIDR block 10.20.0.0/16" in message
    assert "network.subnets.data[1] = '10.98.1.0/24': is outside the VPC's CIDR block 10.20.0.0/16" in message


def test_subnet_count_must_match_zone_count(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", network__subnets__public=["10.20.0.0/24"])
    assert "network.subnets.public: has 1 CIDR blocks but availability_zones is 2" in refusal(settings_dir)


def test_fewer_than_two_zones_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", network__availability_zones=1)
    assert "staging.yaml: network.availability_zones = 1: input should be greater than or equal to 2" in refusal(
        settings_dir
    )


def test_more_zones_than_the_region_has_is_refused(settings_dir: Path) -> None:
    cert = "arn:aws:acm:us-west-1:222222222222:certificate/22222222-2222-2222-2222-222222222222"
    edit_yaml(settings_dir / "staging.yaml", region="us-west-1", platform__certificate_arn=cert)
    assert load_environment("staging", settings_dir).region == "us-west-1"  # two zones there: fine
    edit_yaml(
        settings_dir / "prod.yaml",
        region="us-west-1",
    )
    assert "prod.yaml: network.availability_zones = 3: us-west-1 has 2 availability zones; use at most 2" in refusal(
        settings_dir, "prod"
    )


@pytest.mark.parametrize("account", ["12345678901", "1234567890123", "12345678901a"])
def test_account_id_must_be_twelve_digits(settings_dir: Path, account: str) -> None:
    edit_yaml(settings_dir / "staging.yaml", account_id=account)
    message = refusal(settings_dir)
    assert f"staging.yaml: account_id = '{account}': is not an AWS account ID: 12 digits" in message


def test_unquoted_account_id_is_refused_with_the_fix(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", account_id=222222222222)
    assert "account_id = 222222222222: must be a string: quote it in YAML" in refusal(settings_dir)


def test_unknown_region_is_refused_with_the_known_ones(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", region="eu-west-9")
    message = refusal(settings_dir)
    assert "staging.yaml: region = 'eu-west-9': is not an AWS region; did you mean 'eu-west-3'?; use one of" in message
    assert "eu-west-1" in message


@pytest.mark.parametrize("project", ["Shop", "shop_two", "9shop", "shop-", "sh--op", "a" * 21])
def test_project_must_fit_in_a_stack_name(settings_dir: Path, project: str) -> None:
    edit_yaml(settings_dir / "defaults.yaml", project=project)
    message = refusal(settings_dir)
    assert f"staging.yaml: project = '{project}' (inherited from {settings_dir / 'defaults.yaml'}): " in message


def test_problem_is_blamed_on_the_file_that_set_the_value(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "defaults.yaml", network__flow_logs__traffic_type="SOME")
    message = refusal(settings_dir)
    # The environment being built, and the file the value comes from (the fix may be in either).
    assert (
        f"staging.yaml: network.flow_logs.traffic_type = 'SOME' (inherited from {settings_dir / 'defaults.yaml'}): "
        in message
    )
    edit_yaml(settings_dir / "staging.yaml", network__flow_logs__traffic_type="SOME")
    message = refusal(settings_dir)
    assert "staging.yaml: network.flow_logs.traffic_type = 'SOME': " in message and "inherited" not in message


def test_invalid_retention_lists_the_valid_ones(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", network__flow_logs__retention_days=100)
    message = refusal(settings_dir)
    assert "network.flow_logs.retention_days = 100: is not a retention CloudWatch Logs accepts" in message
    assert "90, 120" in message


def test_reserved_tag_keys_are_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", tags={"Environment": "x"})
    assert "staging.yaml: tags.Environment = 'x': is set by the generator" in refusal(settings_dir)


def test_vpc_cidr_size_is_checked(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", network__cidr="10.0.0.0/8")
    assert "network.cidr = '10.0.0.0/8': a VPC's CIDR block must be between /16 and /28" in refusal(settings_dir)


def test_missing_required_setting_is_named(settings_dir: Path) -> None:
    path = settings_dir / "staging.yaml"
    path.write_text(path.read_text().replace('account_id: "222222222222"\n', ""))
    assert "staging.yaml: account_id: is required and set neither in this file nor in defaults.yaml" in refusal(
        settings_dir
    )


def test_malformed_yaml_names_file_and_line(settings_dir: Path) -> None:
    (settings_dir / "staging.yaml").write_text("region: [eu-west-1\nnetwork: {}\n")
    message = refusal(settings_dir)
    assert message.startswith(str(settings_dir / "staging.yaml").lstrip("/")) or "staging.yaml" in message
    assert "is not valid YAML (line" in message


def test_a_file_that_is_not_a_mapping_is_refused(settings_dir: Path) -> None:
    (settings_dir / "staging.yaml").write_text("- just\n- a list\n")
    assert "staging.yaml: must be a mapping of settings, not list" in refusal(settings_dir)


def test_missing_environment_lists_the_ones_there_are(settings_dir: Path) -> None:
    message = refusal(settings_dir, "qa")
    assert "qa.yaml: no such environment file; environments here: dev, dr, prod, staging" in message


def test_environment_file_names_must_fit_in_a_stack_name(settings_dir: Path) -> None:
    (settings_dir / "staging.yaml").rename(settings_dir / "Stage_1.yaml")
    assert "Stage_1.yaml: name = 'Stage_1': string should match pattern" in refusal(settings_dir, "Stage_1")


def test_name_cannot_be_set_inside_the_file(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", name="prod")
    assert "staging.yaml: name: is set by the generator, not in a file; remove the key" in refusal(settings_dir)


def test_parsed_settings_have_real_types(environments) -> None:
    assert environments["prod"].network.cidr == ipaddress.IPv4Network("10.30.0.0/16")
    assert environments["prod"].production is True


# --- services, platform, registry -------------------------------------------------------------


def test_services_merge_per_key_so_environments_override_counts(environments) -> None:
    assert environments["prod"].services["api"].desired_count == 3
    assert environments["prod"].services["api"].port == 8000  # from defaults.yaml
    assert environments["dev"].services["api"].exec is True
    assert environments["prod"].services["api"].exec is False


@pytest.mark.parametrize(("cpu", "memory", "message"), [
    (300, 512, "services.web.cpu = 300: is not a Fargate CPU size (did you mean 256 or 512?); use one of 256, 512"),
    (256, 4096, "services.web.memory = 4096: is not a size Fargate accepts with cpu 256 (did you mean 2048?); "
                "use 512, 1024 or 2048"),
    # 1536 lies between 512 and 2048 but is not one of cpu 256's sizes: the message lists them
    (256, 1536, "services.web.memory = 1536: is not a size Fargate accepts with cpu 256 (did you mean 1024 or 2048?); "
                "use 512, 1024 or 2048"),
    (1024, 1500, "services.web.memory = 1500: is not a size Fargate accepts with cpu 1024 (did you mean 2048?); "
                 "use 2048 to 8192 in steps of 1024"),
    (1024, 9000, "services.web.memory = 9000: is not a size Fargate accepts with cpu 1024 (did you mean 8192?)"),
])  # fmt: skip
def test_cpu_and_memory_must_be_a_fargate_size(settings_dir: Path, cpu: int, memory: int, message: str) -> None:
    edit_yaml(settings_dir / "staging.yaml", services__web__cpu=cpu, services__web__memory=memory)
    assert f"staging.yaml: {message}" in refusal(settings_dir)


@pytest.mark.parametrize("name", ["Web", "web_app", "-web", "web-", "w" * 33])
def test_service_names_must_be_dns_safe(settings_dir: Path, name: str) -> None:
    edit_yaml(settings_dir / "staging.yaml", services={name: {"port": 1}})
    assert f"staging.yaml: services.{name}: is not a DNS-safe service name" in refusal(settings_dir)


def test_a_service_named_twice_is_refused(settings_dir: Path) -> None:
    path = settings_dir / "staging.yaml"
    twice = "services:\n  web: {desired_count: 2}\n  web: {desired_count: 3}\n"
    path.write_text(path.read_text().replace("services:\n", twice, 1))  # staging has a services block
    message = refusal(settings_dir)
    assert "staging.yaml: is not valid YAML (line" in message
    assert "key 'web' is given twice in one mapping" in message


def test_two_services_on_the_same_route_are_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", services__api__routing={"paths": ["/*"]})
    # web's route is defaults.yaml's; the conflict is staging's: the line names both files.
    assert (
        f"staging.yaml: services.web.routing.paths[0] = '/*' (inherited from {settings_dir / 'defaults.yaml'}): "
        "routes the same requests as services.api"
    ) in refusal(settings_dir)


def test_two_services_with_one_priority_are_refused(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "staging.yaml",
        services__api__routing={"paths": ["/api/*"], "priority": 10},
        services__web__routing={"paths": ["/*"], "priority": 10},
    )
    assert "services.web.routing.priority = 10: is already the priority of services.api" in refusal(settings_dir)


@pytest.mark.parametrize("port", [0, 65536])
def test_port_must_be_a_port(settings_dir: Path, port: int) -> None:
    edit_yaml(settings_dir / "staging.yaml", services__web__port=port)
    assert f"staging.yaml: services.web.port = {port}: input should be" in refusal(settings_dir)


@pytest.mark.parametrize("value", ["hunter2", "secretsmanager:", "ssm:relative/name", "arn:aws:secretsmanager:x"])
def test_a_secret_given_as_a_value_is_refused_and_not_echoed(settings_dir: Path, value: str) -> None:
    edit_yaml(settings_dir / "staging.yaml", services__api__secrets={"DATABASE_PASSWORD": value})
    message = refusal(settings_dir)
    assert "services.api.secrets.DATABASE_PASSWORD = '(hidden)': looks like a value, not a reference" in message
    assert f"'{value}'" not in message


# Credential formats detect-secrets knows (these are made-up values of those formats), and a value
# given to a name that says it is a secret.
CREDENTIALS = [
    ("STRIPE_SECRET_KEY", "sk_live_" + "51HxYzAbCdEfGhIjKlMnOpQr", "Stripe Access Key"),
    ("AWS_ACCESS_KEY_ID", "AKIA" + "IOSFODNN7EXAMPLE", "AWS Access Key"),
    ("GITHUB_TOKEN", "ghp_" + "abcdefghijklmnopqrstuvwxyz0123456789", "GitHub Token"),
    ("SMTP_PASSWORD", "hunter2xyzzy", "Secret Keyword"),
]


@pytest.mark.parametrize(("variable", "value", "kind"), CREDENTIALS)
def test_a_credential_in_a_plain_variable_is_refused_with_the_fix(settings_dir, variable, value, kind) -> None:
    edit_yaml(settings_dir / "staging.yaml", services__api__environment={"LOG_LEVEL": "info", variable: value})
    message = refusal(settings_dir)
    assert f"staging.yaml: services.api.environment.{variable} = '(hidden)': looks like a credential (" in message
    assert kind in message
    assert "give it under secrets: instead" in message
    assert value not in message


@pytest.mark.parametrize(
    "value", ["info", "/api", "https://api.example.com/v1", "30", "123e4567-e89b-12d3-a456-426614174000"]
)
def test_ordinary_plain_values_pass_the_credential_check(settings_dir: Path, value: str) -> None:
    edit_yaml(settings_dir / "staging.yaml", services__api__environment={"SOME_SETTING": value})
    assert load_environment("staging", settings_dir).services["api"].environment["SOME_SETTING"] == value


def test_desired_count_must_lie_within_autoscaling(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", services__web__desired_count=9)
    assert "services.web.desired_count = 9: must lie between autoscaling.min (2) and max (6)" in refusal(settings_dir)


def test_autoscaling_min_above_max_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", services__web__autoscaling={"min": 5, "max": 3})
    assert "services.web.autoscaling.min = 5: is above max (3)" in refusal(settings_dir)


def test_capacity_needs_some_weight(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "staging.yaml", platform__capacity={"fargate_base": 1, "fargate_weight": 0, "spot_weight": 0}
    )
    assert "platform.capacity.spot_weight = 0: fargate_weight and spot_weight cannot both be 0" in refusal(settings_dir)


def test_a_route_needs_a_path_or_a_host(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "staging.yaml", services__web__routing={"paths": []})
    assert "services.web.routing: give at least one path pattern or host header" in refusal(settings_dir)


def test_certificate_from_another_region_is_refused(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "staging.yaml",
        platform__certificate_arn="arn:aws:acm:us-east-1:222222222222:certificate/22222222-2222-2222-2222-222222222222",
    )
    assert "platform.certificate_arn = 'arn:aws:acm:us-east-1:" in refusal(settings_dir)
    assert "an ALB can only use a certificate from its own account and region" in refusal(settings_dir)


def test_a_prefix_list_id_is_refused_with_internet_ingress(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "staging.yaml", platform__ingress="internet", platform__cloudfront_prefix_list_id="pl-4fa04526"
    )
    assert "platform.cloudfront_prefix_list_id = 'pl-4fa04526': is only used when ingress is 'cloudfront'" in refusal(
        settings_dir
    )


def test_registry_must_be_the_same_for_every_environment(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "prod.yaml", registry__region="eu-west-2")
    environments = [load_environment(n, settings_dir) for n in ENVIRONMENTS]
    with pytest.raises(SettingsError) as caught:
        project_of(environments, settings_dir)
    assert caught.value.problems == [
        f"{settings_dir / 'prod.yaml'}: registry.region = 'eu-west-2': differs from 'eu-west-1' in dev, dr, staging; "
        "every environment shares one registry (set it in defaults.yaml only)"
    ]


def test_project_is_a_reserved_environment_name(settings_dir: Path) -> None:
    (settings_dir / "staging.yaml").rename(settings_dir / "project.yaml")
    assert "project.yaml: name = 'project': is reserved" in refusal(settings_dir, "project")


def test_a_secret_named_without_its_suffix_is_refused(settings_dir: Path) -> None:
    # ECS takes a secret's full ARN (ECS API reference, Secret.valueFrom): name plus 6 characters.
    edit_yaml(settings_dir / "staging.yaml", services__api__secrets={"KEY": "secretsmanager:shop/api/payment#api_key"})
    message = refusal(settings_dir)
    assert "services.api.secrets.KEY = 'secretsmanager:shop/api/payment#api_key': names the secret without" in message
    assert "ECS takes a secret's full ARN" in message


def test_exec_with_a_read_only_root_filesystem_is_refused(settings_dir: Path) -> None:
    # ECS Exec's agent writes to the container's filesystem (ECS Developer Guide, ECS Exec).
    edit_yaml(settings_dir / "staging.yaml", services__web__exec=True)
    # the value as YAML writes it (true), not as Python does
    assert "services.web.exec = true: needs read_only_root_filesystem: false" in refusal(settings_dir)
    edit_yaml(settings_dir / "staging.yaml", services__web__read_only_root_filesystem=False)
    assert load_environment("staging", settings_dir).services["web"].exec


def test_zero_acu_needs_an_auto_pause_engine_version(settings_dir: Path) -> None:
    serverless = {"mode": "serverless", "min_acu": 0, "max_acu": 4, "readers": 0}
    edit_yaml(settings_dir / "staging.yaml", database__capacity=serverless, database__engine_version="13.9")
    message = refusal(settings_dir)
    assert "database.capacity.min_acu = 0: 0 (auto-pause) needs aurora-postgresql 13.15, 14.12" in message


def test_seconds_until_auto_pause_only_with_zero_acu_and_in_aws_range(settings_dir: Path) -> None:
    capacity = {"mode": "serverless", "min_acu": 0.5, "max_acu": 4, "seconds_until_auto_pause": 600}
    edit_yaml(settings_dir / "staging.yaml", database__capacity=capacity)
    assert "database.capacity.seconds_until_auto_pause = 600: applies only with min_acu 0" in refusal(settings_dir)
    edit_yaml(
        settings_dir / "staging.yaml", database__capacity={**capacity, "min_acu": 0, "seconds_until_auto_pause": 299}
    )
    assert "database.capacity.seconds_until_auto_pause = 299: input should be greater than or equal to 300" in refusal(
        settings_dir
    )
