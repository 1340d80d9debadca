"""Service stacks: routing, task definition, ECS service, autoscaling and per-service IAM."""

from __future__ import annotations

import pytest
from conftest import (
    ENVIRONMENTS,
    KINDS,
    SERVICES,
    WEB_SERVICES,
    build_all,
    build_environment,
    edit_yaml,
    resources,
    walk,
)

CASES = [(env, service) for env in ENVIRONMENTS for service in SERVICES]
WEB_CASES = [(env, service) for env in ENVIRONMENTS for service in WEB_SERVICES]

# The payment secret's suffix in each fixture environment: Secrets Manager's, per account and region.
SUFFIX = {"dev": "Dv4k9Q", "staging": "St7mW2", "prod": "Pr3x8N", "dr": "Dr5nE3"}


def body_of(stacks, env: str, service: str) -> dict:
    return stacks[env][f"svc-{service}"].body


def container(body: dict) -> dict:
    (definition,) = body["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    return definition


def statements(body: dict, role: str) -> dict[str, dict]:
    policies = body["Resources"][role]["Properties"].get("Policies", [])
    return {s["Sid"]: s for p in policies for s in p["PolicyDocument"]["Statement"]}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_one_stack_per_service(stacks, environments, env) -> None:
    assert sorted(k for k in stacks[env] if k.startswith("svc-")) == sorted(
        f"svc-{s}" for s in environments[env].services
    )
    assert stacks[env]["svc-api"].name == f"shop-{env}-svc-api"


@pytest.mark.parametrize(("env", "service"), CASES)
def test_the_image_tag_is_the_only_parameter(stacks, env, service) -> None:
    body = body_of(stacks, env, service)
    assert list(body["Parameters"]) == ["ImageTag"]
    region = "eu-central-1" if env == "dr" else "eu-west-1"  # dr: ECR's replica in its region (test_dr.py)
    assert container(body)["Image"] == {
        "Fn::Sub": f"444444444444.dkr.ecr.{region}.${{AWS::URLSuffix}}/shop/{service}:${{ImageTag}}"
    }


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_routing_sends_api_paths_to_api_before_the_catch_all(stacks, env) -> None:
    rules = {s: body_of(stacks, env, s)["Resources"]["ListenerRule"]["Properties"] for s in WEB_SERVICES}
    # and, behind CloudFront, the origin-verify header (tests/test_origin_verify.py)
    paths = {s: [c for c in rule["Conditions"] if c["Field"] != "http-header"] for s, rule in rules.items()}
    assert paths["api"] == [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/api/*"]}}]
    assert paths["web"] == [{"Field": "path-pattern", "PathPatternConfig": {"Values": ["/*"]}}]
    assert rules["api"]["Priority"] < rules["web"]["Priority"]  # lower is evaluated first
    assert rules["api"]["ListenerArn"] == {"Fn::ImportValue": f"shop-{env}-platform-HttpsListenerArn"}


def test_priorities_are_unique_and_stable_when_a_service_is_added(settings_dir, environments) -> None:
    before = environments["prod"].listener_priorities()
    edit_yaml(
        settings_dir / "defaults.yaml",
        services__admin={
            "port": 9000,
            "cpu": 256,
            "memory": 512,
            "desired_count": 1,
            "autoscaling": {"min": 1, "max": 2},
            "routing": {"paths": ["/admin/*"], "hosts": ["admin.example.com"]},
        },
        platform__ingress="internet",  # a host condition never matches behind CloudFront (test_edge_routes.py)
    )
    after = build_all(settings_dir).environments["prod"].listener_priorities()
    assert {k: after[k] for k in before} == before
    assert len(set(after.values())) == len(after)
    assert after["admin"] < after["api"] < after["web"]  # host + path, then a path, then "/*"


def test_an_explicit_priority_wins_and_collisions_are_probed_away(settings_dir) -> None:
    edit_yaml(settings_dir / "defaults.yaml", services__api__routing={"paths": ["/api/*"], "priority": 7})
    priorities = build_all(settings_dir).environments["dev"].listener_priorities()
    assert priorities["api"] == 7
    assert priorities["web"] != 7


@pytest.mark.parametrize(("env", "service"), CASES)
def test_task_definition_is_fargate_awsvpc_non_root_read_only(stacks, environments, env, service) -> None:
    settings = environments[env].services[service]
    body = body_of(stacks, env, service)
    task = body["Resources"]["TaskDefinition"]["Properties"]
    assert task["NetworkMode"] == "awsvpc"
    assert task["RequiresCompatibilities"] == ["FARGATE"]
    assert (task["Cpu"], task["Memory"]) == (str(settings.cpu), str(settings.memory))
    definition = container(body)
    assert definition["Memory"] == settings.memory  # the container's own hard limit, the task's whole memory
    assert definition["User"] == "1000"
    # Read-only unless the service asks for ECS Exec, whose agent needs a writable root (config refuses both).
    assert definition["ReadonlyRootFilesystem"] is (not settings.exec)
    if settings.port is None:  # a worker or a job: no port
        assert "PortMappings" not in definition
    else:  # a backend's port is named: Service Connect refers to it by name
        named = {"Name": "http", "AppProtocol": "http"} if settings.kind == "backend" else {}
        assert definition["PortMappings"] == [{"ContainerPort": settings.port, "Protocol": "tcp", **named}]
    logging = definition["LogConfiguration"]
    assert logging["LogDriver"] == "awslogs" and logging["Options"]["awslogs-group"] == {"Ref": "LogGroup"}
    group = body["Resources"]["LogGroup"]["Properties"]
    assert group["RetentionInDays"] == environments[env].platform.log_retention_days
    assert group["KmsKeyId"] == {"Fn::ImportValue": f"shop-{env}-keys-LogsKeyArn"}


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_secrets_are_injected_by_reference_never_as_environment(stacks, env) -> None:
    definition = container(body_of(stacks, env, "api"))
    variables = {e["Name"]: e["Value"] for e in definition["Environment"]}
    assert variables == {
        "LOG_LEVEL": "info",
        "DB_HOST": {"Fn::ImportValue": f"shop-{env}-data-ClusterEndpoint"},
        "DB_PORT": {"Fn::ImportValue": f"shop-{env}-data-Port"},
        "DB_NAME": {"Fn::ImportValue": f"shop-{env}-data-DatabaseName"},
        # IAM database authentication as the service's own user: no password, no secret
        "DB_USERNAME": "svc_api",
        "DB_AUTH": "iam",
        "DB_REGION": {"Ref": "AWS::Region"},
        # api sends to the mailer worker's queue (sends_to)
        "QUEUE_URL_MAILER": {
            "Fn::Sub": f"https://sqs.${{AWS::Region}}.${{AWS::URLSuffix}}/${{AWS::AccountId}}/shop-{env}-svc-mailer"
        },
    }
    secrets = {s["Name"]: s["ValueFrom"]["Fn::Sub"] for s in definition["Secrets"]}
    prefix = "arn:${AWS::Partition}:"
    assert secrets == {
        # the complete ARN (name and the suffix Secrets Manager appended): ECS takes a full ARN
        "PAYMENT_API_KEY": prefix
        + f"secretsmanager:${{AWS::Region}}:${{AWS::AccountId}}:secret:shop/api/payment-{SUFFIX[env]}:api_key::",
        "SIGNING_KEY": prefix + "ssm:${AWS::Region}:${AWS::AccountId}:parameter/shop/api/signing-key",
    }


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_a_service_signs_in_to_the_database_as_its_own_user_only(stacks, env) -> None:
    granted = statements(body_of(stacks, env, "api"), "TaskRole")["ConnectAsThisServicesDatabaseUser"]
    assert granted["Action"] == ["rds-db:connect"]
    assert granted["Resource"] == [
        {
            "Fn::Sub": [
                "arn:${AWS::Partition}:rds-db:${AWS::Region}:${AWS::AccountId}:dbuser:${ResourceId}/svc_api",
                {"ResourceId": {"Fn::ImportValue": f"shop-{env}-data-ClusterResourceId"}},
            ]
        }
    ]


def test_a_service_without_database_access_gets_no_database_settings(stacks) -> None:
    definition = container(body_of(stacks, "prod", "web"))
    names = {e["Name"] for e in definition.get("Environment", [])} | {s["Name"] for s in definition.get("Secrets", [])}
    assert not names & {"DB_HOST", "DB_PORT", "DB_NAME", "DB_USERNAME", "DB_AUTH", "DB_PASSWORD"}
    assert "ConnectAsThisServicesDatabaseUser" not in statements(body_of(stacks, "prod", "web"), "TaskRole")
    assert "data-" not in stacks["prod"]["svc-web"].json


@pytest.mark.parametrize(("env", "service"), CASES)
def test_service_runs_in_private_subnets_without_public_ip_with_circuit_breaker(stacks, env, service) -> None:
    if KINDS[service] == "job":  # no service: each run's task gets the same network configuration
        ecs = body_of(stacks, env, service)["Resources"]["Schedule"]["Properties"]["Target"]["EcsParameters"]
        network = ecs["NetworkConfiguration"]["AwsvpcConfiguration"]
        assert network["AssignPublicIp"] == "DISABLED"
        assert network["Subnets"] == {"Fn::Split": [",", {"Fn::ImportValue": f"shop-{env}-network-PrivateSubnetIds"}]}
        assert network["SecurityGroups"] == [{"Fn::GetAtt": ["ServiceSecurityGroup", "GroupId"]}]
        return
    props = body_of(stacks, env, service)["Resources"]["Service"]["Properties"]
    network = props["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    assert network["Subnets"] == {"Fn::Split": [",", {"Fn::ImportValue": f"shop-{env}-network-PrivateSubnetIds"}]}
    assert network["SecurityGroups"] == [{"Fn::GetAtt": ["ServiceSecurityGroup", "GroupId"]}]
    if env == "dev" or KINDS[service] != "web":  # rolling; blue/green: test_delivery
        breaker = props["DeploymentConfiguration"]["DeploymentCircuitBreaker"]
        assert breaker == {"Enable": True, "Rollback": True}
    if KINDS[service] == "web":
        assert props["LoadBalancers"][0]["ContainerName"] == service
    else:
        assert "LoadBalancers" not in props


@pytest.mark.parametrize(
    ("env", "service", "exec_on"), [("dev", "api", True), ("dev", "web", False), ("prod", "api", False)]
)
def test_ecs_exec_is_off_unless_asked(stacks, env, service, exec_on) -> None:
    body = body_of(stacks, env, service)
    assert body["Resources"]["Service"]["Properties"]["EnableExecuteCommand"] is exec_on
    assert ("EcsExecSessionChannels" in statements(body, "TaskRole")) is exec_on


@pytest.mark.parametrize(
    ("env", "base", "fargate", "spot"),
    [("dev", 0, 0, 1), ("staging", 1, 1, 3), ("prod", 2, 1, 3), ("dr", 1, 1, 1)],
)
def test_spot_mix_per_environment(stacks, env, base, fargate, spot) -> None:
    for service in SERVICES:
        resources_ = body_of(stacks, env, service)["Resources"]
        if KINDS[service] == "job":  # each run's task takes the same mix
            strategy = resources_["Schedule"]["Properties"]["Target"]["EcsParameters"]["CapacityProviderStrategy"]
        else:
            strategy = resources_["Service"]["Properties"]["CapacityProviderStrategy"]
        assert strategy == [
            {"CapacityProvider": "FARGATE", "Base": base, "Weight": fargate},
            {"CapacityProvider": "FARGATE_SPOT", "Weight": spot},
        ]


def test_a_service_can_override_the_capacity_mix(settings_dir) -> None:
    edit_yaml(
        settings_dir / "prod.yaml", services__web__capacity={"fargate_base": 0, "fargate_weight": 1, "spot_weight": 0}
    )
    body = build_environment(settings_dir, "prod")["svc-web"].body
    strategy = body["Resources"]["Service"]["Properties"]["CapacityProviderStrategy"]
    assert [s["Weight"] for s in strategy] == [1, 0]


@pytest.mark.parametrize(("env", "service"), WEB_CASES)  # the other kinds: test_kinds.py
def test_autoscaling_tracks_cpu_and_requests_per_target(stacks, environments, env, service) -> None:
    settings = environments[env].services[service].autoscaling
    body = body_of(stacks, env, service)
    target = body["Resources"]["ScalableTarget"]["Properties"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (settings.min, settings.max)
    cpu = body["Resources"]["CpuScaling"]["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert cpu["TargetValue"] == settings.cpu_target
    requests = body["Resources"]["RequestScaling"]["Properties"]["TargetTrackingScalingPolicyConfiguration"]
    assert requests["TargetValue"] == settings.requests_per_target
    if environments[env].strategy_of(service) == "blue-green":
        # AWS does not support ALBRequestCountPerTarget with the blue/green deployment type (rule
        # E9006): both target groups' requests per running task, whichever colour serves
        assert "PredefinedMetricSpecification" not in requests
        queries = {q["Id"]: q for q in requests["CustomizedMetricSpecification"]["Metrics"]}
        assert queries["per_task"]["Expression"] == "(FILL(requests1, 0) + FILL(requests2, 0)) / tasks"
        assert [q["Id"] for q in queries.values() if q["ReturnData"]] == ["per_task"]
        groups = [
            {d["Name"]: d["Value"] for d in queries[f"requests{i}"]["MetricStat"]["Metric"]["Dimensions"]}[
                "TargetGroup"
            ]
            for i in (1, 2)
        ]
        assert groups == [
            {"Fn::GetAtt": ["TargetGroup", "TargetGroupFullName"]},
            {"Fn::GetAtt": ["GreenTargetGroup", "TargetGroupFullName"]},
        ]
        tasks = queries["tasks"]["MetricStat"]
        assert (tasks["Metric"]["Namespace"], tasks["Metric"]["MetricName"]) == (
            "ECS/ContainerInsights",
            "RunningTaskCount",
        )
        return
    assert requests["PredefinedMetricSpecification"]["PredefinedMetricType"] == "ALBRequestCountPerTarget"


def test_requests_per_target_null_leaves_cpu_scaling_only(settings_dir) -> None:
    edit_yaml(
        settings_dir / "defaults.yaml", services__web__autoscaling={"min": 2, "max": 6, "requests_per_target": None}
    )
    body = build_environment(settings_dir, "prod")["svc-web"].body
    assert "RequestScaling" not in body["Resources"] and "CpuScaling" in body["Resources"]


@pytest.mark.parametrize(("env", "service"), CASES)
def test_execution_role_reaches_only_this_services_image_logs_and_secrets(stacks, env, service) -> None:
    body = body_of(stacks, env, service)
    allowed = statements(body, "ExecutionRole")
    region = "eu-central-1" if env == "dr" else "eu-west-1"  # dr: ECR's replica in its region (test_dr.py)
    assert allowed["PullThisServicesImage"]["Resource"] == [
        {"Fn::Sub": f"arn:${{AWS::Partition}}:ecr:{region}:444444444444:repository/shop/{service}"}
    ]
    assert allowed["GetRegistryLoginToken"]["Action"] == ["ecr:GetAuthorizationToken"]
    assert allowed["WriteThisServicesLogs"]["Resource"] == [{"Fn::GetAtt": ["LogGroup", "Arn"]}]
    if service == "api":
        (secret,) = allowed["ReadThisServicesSecrets"]["Resource"]
        assert secret["Fn::Sub"].endswith(f":secret:shop/api/payment-{SUFFIX[env]}")  # exactly what ValueFrom names
        (parameter,) = allowed["ReadThisServicesParameters"]["Resource"]
        assert parameter["Fn::Sub"].endswith(":parameter/shop/api/signing-key")
        # no database secret: the service signs in with IAM database authentication (its task role)
        assert set(allowed) == {
            "PullThisServicesImage",
            "GetRegistryLoginToken",
            "WriteThisServicesLogs",
            "ReadThisServicesSecrets",
            "ReadThisServicesParameters",
        }
    else:  # with or without the database: no secret of it (IAM database authentication)
        assert set(allowed) == {"PullThisServicesImage", "GetRegistryLoginToken", "WriteThisServicesLogs"}


ASSET_GRANTS = {
    "none": set(),
    "read": {"ListTheAssetsBucket", "ReadAssets", "UseTheAssetsKeyThroughS3"},
    "write": {"ListTheAssetsBucket", "ReadAssets", "WriteAssets", "UseTheAssetsKeyThroughS3"},
}


@pytest.mark.parametrize(("env", "service"), CASES)
def test_task_role_grants_nothing_the_settings_do_not(stacks, environments, env, service) -> None:
    settings = environments[env].services[service]
    granted = statements(body_of(stacks, env, service), "TaskRole")
    expected = ({"EcsExecSessionChannels"} if settings.exec else set()) | ASSET_GRANTS[settings.assets]
    expected |= {"ConnectAsThisServicesDatabaseUser"} if settings.database_access else set()
    if settings.kind == "worker":  # its own queue (test_kinds.py)
        expected |= {"ConsumeThisServicesQueue", "UseTheDataKeyThroughSqs"}
    if settings.sends_to:
        expected |= {"SendToTheWorkersQueues", "UseTheDataKeyThroughSqs"}
    assert set(granted) == expected


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_asset_grants_reach_only_the_assets_bucket(stacks, env) -> None:
    web = statements(body_of(stacks, env, "web"), "TaskRole")  # read
    api = statements(body_of(stacks, env, "api"), "TaskRole")  # write
    # dr's services use the replica of prod's assets, in their own region
    bucket = {
        "Fn::ImportValue": "shop-dr-assets-replica-ReplicaBucketArn"
        if env == "dr"
        else f"shop-{env}-edge-AssetsBucketArn"
    }
    objects = {"Fn::Sub": ["${Bucket}/*", {"Bucket": bucket}]}
    assert web["ReadAssets"]["Resource"] == [objects] and web["ReadAssets"]["Action"] == ["s3:GetObject"]
    assert web["ListTheAssetsBucket"]["Resource"] == [bucket]
    assert web["UseTheAssetsKeyThroughS3"]["Action"] == ["kms:Decrypt"]
    assert api["WriteAssets"]["Action"] == ["s3:PutObject", "s3:DeleteObject"]
    assert api["WriteAssets"]["Resource"] == [objects]
    assert api["UseTheAssetsKeyThroughS3"]["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
    for grants in (web, api):
        key = grants["UseTheAssetsKeyThroughS3"]
        assert key["Resource"] == [{"Fn::ImportValue": f"shop-{env}-keys-DataKeyArn"}]
        assert key["Condition"] == {"StringEquals": {"kms:ViaService": {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"}}}


@pytest.mark.parametrize(("env", "service"), CASES)
def test_no_other_services_names_appear_in_a_service_stack(stacks, env, service) -> None:
    others = [s for s in SERVICES if s != service]
    text = stacks[env][f"svc-{service}"].json
    for other in others:
        assert f"shop/{other}" not in text and f"{other.capitalize()}Service" not in text


def test_adding_a_service_adds_one_stack_and_one_repository(settings_dir) -> None:
    before = build_all(settings_dir)
    edit_yaml(
        settings_dir / "defaults.yaml",
        services__worker={
            "port": 7000,
            "cpu": 256,
            "memory": 1024,
            "desired_count": 1,
            "autoscaling": {"min": 1, "max": 2},
            "routing": {"paths": ["/jobs/*"]},
        },
    )
    after = build_all(settings_dir)
    for env in before.stacks:
        assert set(after.stacks[env]) - set(before.stacks[env]) == {"svc-worker"}
        for layer in before.stacks[env]:
            if layer not in ("monitoring", "dashboard", "edge"):  # which watch every service
                assert after.stacks[env][layer].body == before.stacks[env][layer].body, (env, layer)
        # the distribution gains the route's cache behaviour (CloudFront reaches every web route), nothing else
        config = {
            when: built.stacks[env]["edge"].body["Resources"]["Distribution"]["Properties"]["DistributionConfig"]
            for when, built in (("before", before), ("after", after))
        }
        added = [b for b in config["after"]["CacheBehaviors"] if b not in config["before"]["CacheBehaviors"]]
        assert [(b["PathPattern"], b["TargetOriginId"]) for b in added] == [("/jobs/*", "load-balancer")]
        assert {**config["after"], "CacheBehaviors": [], "Comment": ""} == {
            **config["before"],
            "CacheBehaviors": [],
            "Comment": "",
        }
    assert set(after.project_stacks) - set(before.project_stacks) == {"registry-worker", "delivery-worker"}
    worker = after.project_stacks["registry-worker"].body["Resources"]["Repository"]["Properties"]
    assert worker["RepositoryName"] == "shop/worker"
    for layer, stack in before.project_stacks.items():
        if layer == "delivery-infrastructure":  # it deploys the new service stacks too
            stages = after.project_stacks[layer].body["Resources"]["Pipeline"]["Properties"]["Stages"]
            deployed = {a["Configuration"].get("StackName") for stage in stages for a in stage["Actions"]}
            assert {f"shop-{e}-svc-worker" for e in before.stacks} <= deployed
            continue
        assert after.project_stacks[layer].body == stack.body, layer  # nothing else changes


def test_read_write_root_filesystem_only_when_asked(settings_dir) -> None:
    edit_yaml(settings_dir / "defaults.yaml", services__web__read_only_root_filesystem=False, services__web__user=None)
    body = build_environment(settings_dir, "prod")["svc-web"].body
    definition = container(body)
    assert definition["ReadonlyRootFilesystem"] is False
    assert "User" not in definition


@pytest.mark.parametrize(("env", "service"), CASES)
def test_no_secret_value_is_ever_in_a_template(stacks, env, service) -> None:
    for node in walk(body_of(stacks, env, service)):
        if isinstance(node, dict) and "Name" in node and "Value" in node:
            assert "PASSWORD" not in node["Name"] and "KEY" not in node["Name"]
    assert resources(body_of(stacks, env, service), "AWS::SecretsManager::Secret") == {}
