"""The DR environment: a standby of prod in another region whose database is already there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import BUILT, ENVIRONMENTS, build_all, build_environment, edit_yaml, refusal, resources

from infra_templates import checks
from infra_templates.config import SettingsError, load_environment, project_of
from infra_templates.pipeline import Stack, interleave
from templates.release_files import delivery_files


def test_dr_protects_prod_from_another_region(environments) -> None:
    dr, prod = environments["dr"], environments["prod"]
    assert dr.dr is not None and dr.dr.protects == "prod"
    assert dr.region != prod.region
    assert prod.standby is not None and (prod.standby.environment, prod.standby.region) == ("dr", dr.region)
    assert all(environments[e].standby is None for e in ENVIRONMENTS if e != "prod")


def test_prod_becomes_the_primary_of_a_global_database(stacks) -> None:
    glob = stacks["prod"]["data"].body["Resources"]["GlobalCluster"]["Properties"]
    assert glob["GlobalClusterIdentifier"] == "shop-prod-global"
    assert glob["SourceDBClusterIdentifier"] == {"Fn::GetAtt": ["Cluster", "DBClusterArn"]}
    assert "GlobalCluster" not in stacks["staging"]["data"].body["Resources"]  # nothing stands by for it


def test_the_dr_cluster_joins_with_no_credentials_of_its_own(stacks) -> None:
    props = stacks["dr"]["data"].body["Resources"]["Cluster"]["Properties"]
    assert props["GlobalClusterIdentifier"] == "shop-prod-global"
    for credential in ("MasterUsername", "MasterUserPassword", "ManageMasterUserPassword", "MasterUserSecret"):
        assert credential not in props  # AWS refuses credentials on a secondary
    assert "DatabaseName" not in props  # replicated from the primary
    assert props["StorageEncrypted"] is True
    assert props["KmsKeyId"] == {"Fn::ImportValue": "shop-dr-keys-DataKeyArn"}  # its own region's key
    assert props["EngineVersion"] == stacks["prod"]["data"].body["Resources"]["Cluster"]["Properties"]["EngineVersion"]


def test_pilot_light_is_headless_until_failover(stacks) -> None:
    assert resources(stacks["dr"]["data"].body, "AWS::RDS::DBInstance") == {}


def test_dr_services_read_the_replicated_secret_in_their_region(stacks) -> None:
    body = stacks["dr"]["data"].body
    outputs = body["Outputs"]
    secret = "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:"
    # The complete ARN (ECS takes a full ARN): the replica keeps the name and suffix of prod's
    # secret, whose ARN (prod data's output SecretArn) is a parameter; only the region differs.
    assert outputs["SecretArn"]["Value"] == {
        "Fn::Sub": [secret + "${Name}", {"Name": {"Fn::Select": [6, {"Fn::Split": [":", {"Ref": "SecretArn"}]}]}}]
    }
    assert body["Metadata"]["InfraTemplatesParameterSources"]["SecretArn"] == {
        "Stack": "shop-prod-data",
        "Output": "SecretArn",
    }
    assert outputs["SecretResource"]["Value"] == {"Fn::Sub": secret + "shop/prod/database-??????"}


def test_the_dr_manifest_orders_both_regions(stacks) -> None:
    manifest = json.loads(BUILT.files["dr"]["manifest.json"])
    order = [(s["name"], s["region"]) for s in manifest["stacks"]]
    names = [name for name, _ in order]
    assert ("shop-prod-data", "eu-west-1") in order
    assert names.index("shop-prod-data") < names.index("shop-dr-data")  # the global cluster first
    prod_data = next(s for s in manifest["stacks"] if s["name"] == "shop-prod-data")
    assert prod_data["templates"]["yaml"] == "../prod/data.yaml"  # deployed by prod's folder
    dr_data = next(s for s in manifest["stacks"] if s["name"] == "shop-dr-data")
    assert "shop-prod-data" in dr_data["depends_on"]
    assert {region for _, region in order} == {"eu-west-1", "eu-central-1", "us-east-1"}


def test_the_wiring_check_passes_across_regions_and_catches_a_wrong_order(tmp_path: Path) -> None:
    manifest = json.loads(BUILT.files["dr"]["manifest.json"])
    assert checks.check_wiring([(tmp_path / "manifest.json", manifest)]) == []
    stacks = manifest["stacks"]
    prod = next(i for i, s in enumerate(stacks) if s["name"] == "shop-prod-data")
    stacks.append(stacks.pop(prod))  # the primary's data stack after the DR one
    problems = [p.message for p in checks.check_wiring([(tmp_path / "manifest.json", manifest)])]
    assert "shop-dr-data depends on shop-prod-data, which is not deployed before it" in problems


def test_the_runbook_names_this_projects_stacks_clusters_and_commands() -> None:
    runbook = BUILT.files["dr"]["RUNBOOK.md"]
    for expected in (
        "| recovery time (RTO) | 60 minutes |",
        "| recovery point (RPO) | 5 minutes |",
        "aws rds failover-global-cluster --region eu-central-1 --global-cluster-identifier shop-prod-global",
        "--target-db-cluster-identifier arn:aws:rds:eu-central-1:333333333333:cluster:shop-dr --allow-data-loss",
        "aws rds create-db-instance --region eu-central-1 --db-cluster-identifier shop-dr",
        "aws rds switchover-global-cluster --region eu-west-1 --global-cluster-identifier shop-prod-global",
        "--service api --desired-count 3",  # the ECS service is named after the service (ServiceName)
        "--stack-name shop-dr-platform",
        "## Fail back",
        "## Rehearse",
        # what moves by itself, with this project's names
        "the bucket of `shop-dr-assets-replica` holds a copy of `prod`'s assets bucket",
        "when the primary\n  bucket answers 403, 404 or 5xx",
        "Route 53 answers that name with\n  `prod`'s load balancer",
        "hosted zone `Z0123456789SHOPEXAMPLE`",
        'aws s3 sync "s3://$replica" "s3://$assets"',
        "aws route53 get-health-check-status",
        # the primary's check is CALCULATED: GetHealthCheckStatus cannot read it, its alarm can
        "--alarm-name-prefix shop-prod-edge-alarms-ApiFailoverAlarm",
        "OutputKey=='LoadBalancerHealthCheckId'",
    ):
        assert expected in runbook, expected
    assert "RUNBOOK.md" not in BUILT.files["prod"]


def test_the_runbook_says_every_web_route_fails_over_with_the_origin_name() -> None:
    """Behind CloudFront every web route (the web service owns /*) goes to the origin name, not only the
    API: the runbook must not tell the operator that only API calls move."""
    runbook = BUILT.files["dr"]["RUNBOOK.md"]
    assert "CloudFront sends every web route (the site and the API) to `origin.shop.example.com`" in runbook
    assert "web traffic (the site and the API) moves only after the promotion" in runbook
    assert "API calls" not in runbook and "API traffic" not in runbook


def project_refusal(settings_dir: Path) -> str:
    environments = [load_environment(name, settings_dir) for name in ENVIRONMENTS]
    with pytest.raises(SettingsError) as caught:
        project_of(environments, settings_dir)
    return str(caught.value)


def test_a_dr_copy_in_the_primarys_region_is_refused(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "dr.yaml",
        region="eu-west-1",
        platform__certificate_arn="arn:aws:acm:eu-west-1:333333333333:certificate/44444444-4444-4444-4444-444444444444",
    )
    assert "dr.yaml: region: is eu-west-1, the same as prod's; a DR copy runs in another region" in project_refusal(
        settings_dir
    )


def test_a_managed_password_on_the_primary_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "prod.yaml", database__password="managed")
    message = project_refusal(settings_dir)
    assert "prod.yaml: database.password = 'managed': AWS does not allow an RDS-managed password" in message
    assert "set database.password: generated" in message


def test_a_dr_copy_in_another_account_is_refused(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "dr.yaml",
        account_id="555555555555",
        platform__certificate_arn="arn:aws:acm:eu-central-1:555555555555:certificate/44444444-4444-4444-4444-444444444444",
        edge__certificate_arn="arn:aws:acm:us-east-1:555555555555:certificate/33333333-3333-3333-3333-333333333335",
    )
    assert "dr.yaml: account_id: differs from prod's; an Aurora global database spans one account" in project_refusal(
        settings_dir
    )


def test_another_engine_version_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dr.yaml", database__engine_version="17.4")
    assert "dr.yaml: database.engine_version: must equal prod's (aurora-postgresql 17.5)" in project_refusal(
        settings_dir
    )


def test_protecting_an_unknown_environment_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dr.yaml", dr__protects="production")
    assert "dr.yaml: dr.protects = 'production': is not an environment it can protect; use one of" in project_refusal(
        settings_dir
    )


def test_pilot_light_keeps_services_at_one_task(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dr.yaml", services__web={"desired_count": 2, "autoscaling": {"min": 2, "max": 12}})
    with pytest.raises(SettingsError) as caught:
        load_environment("dr", settings_dir)
    assert "dr.yaml: services.web.desired_count = 2: must be 0 or 1 in a pilot-light DR environment" in str(
        caught.value
    )


def test_warm_standby_keeps_a_database_instance(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dr.yaml", dr__posture="warm-standby")
    stacks = build_environment(settings_dir, "dr")
    assert set(resources(stacks["data"].body, "AWS::RDS::DBInstance")) == {"WriterInstance", "ReaderInstance1"}


# --- static assets: replicated to the DR region, failed over by CloudFront ----------------------


def edge_config(stacks, env: str) -> dict:
    return stacks[env]["edge"].body["Resources"]["Distribution"]["Properties"]["DistributionConfig"]


def test_prod_assets_replicate_to_the_dr_replica_with_its_key(stacks) -> None:
    prod_edge = stacks["prod"]["edge"]
    bucket = prod_edge.body["Resources"]["AssetsBucket"]["Properties"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}  # replication needs it on both sides
    replica = stacks["dr"]["assets-replica"].body["Resources"]["ReplicaBucket"]["Properties"]
    assert replica["VersioningConfiguration"] == {"Status": "Enabled"}
    assert replica["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"][
        "KMSMasterKeyID"
    ] == {"Fn::ImportValue": "shop-dr-keys-DataKeyArn"}  # the replica's own region's key
    config = bucket["ReplicationConfiguration"]
    assert config["Role"] == {"Fn::GetAtt": ["ReplicationRole", "Arn"]}
    (rule,) = config["Rules"]
    assert rule["Status"] == "Enabled" and rule["DeleteMarkerReplication"] == {"Status": "Enabled"}
    assert rule["SourceSelectionCriteria"] == {"SseKmsEncryptedObjects": {"Status": "Enabled"}}
    assert rule["Destination"]["Bucket"] == {"Ref": "ReplicaBucketArn"}
    assert rule["Destination"]["EncryptionConfiguration"] == {"ReplicaKmsKeyID": {"Ref": "DataKeyArn"}}
    # Each destination value is read from the DR stacks' outputs (exports do not cross regions).
    assert prod_edge.parameters["ReplicaBucketArn"] == {"stack": "shop-dr-assets-replica", "output": "ReplicaBucketArn"}
    assert prod_edge.parameters["DataKeyArn"] == {"stack": "shop-dr-keys", "output": "DataKeyArn"}
    assert "ReplicationConfiguration" not in stacks["staging"]["edge"].body["Resources"]["AssetsBucket"]["Properties"]


def test_the_replication_role_reaches_only_the_two_buckets_and_keys(stacks) -> None:
    body = stacks["prod"]["edge"].body
    trust = body["Resources"]["ReplicationRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "s3.amazonaws.com"}]
    policy = body["Resources"]["ReplicationPolicy"]["Properties"]
    assert policy["Roles"] == [{"Ref": "ReplicationRole"}]
    by_sid = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    source, objects = {"Fn::GetAtt": ["AssetsBucket", "Arn"]}, {"Fn::Sub": "${AssetsBucket.Arn}/*"}
    replica_objects = {"Fn::Sub": ["${Bucket}/*", {"Bucket": {"Ref": "ReplicaBucketArn"}}]}
    assert by_sid["ReadReplicationConfiguration"]["Resource"] == [source]
    assert by_sid["ReadSourceVersions"]["Resource"] == [objects]
    assert by_sid["WriteReplica"]["Resource"] == [replica_objects]
    assert by_sid["WriteReplica"]["Action"] == ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"]
    decrypt, encrypt = by_sid["DecryptSourceThroughS3"], by_sid["EncryptReplicaThroughS3"]
    assert decrypt["Action"] == ["kms:Decrypt"]
    assert decrypt["Resource"] == [{"Fn::ImportValue": "shop-prod-keys-DataKeyArn"}]
    assert decrypt["Condition"]["StringLike"] == {"kms:EncryptionContext:aws:s3:arn": [source, objects]}
    assert encrypt["Action"] == ["kms:Encrypt", "kms:GenerateDataKey"]
    assert encrypt["Resource"] == [{"Ref": "DataKeyArn"}]
    assert encrypt["Condition"]["StringEquals"] == {"kms:ViaService": "s3.eu-central-1.amazonaws.com"}
    for statement in policy["PolicyDocument"]["Statement"]:
        assert "*" not in statement["Resource"] and statement["Effect"] == "Allow"


def test_prods_assets_origin_group_fails_over_to_the_dr_region(stacks) -> None:
    config = edge_config(stacks, "prod")
    origins = {o["Id"]: o for o in config["Origins"]}
    assert origins["assets"]["DomainName"] == {"Fn::GetAtt": ["AssetsBucket", "RegionalDomainName"]}
    assert origins["assets-standby"]["DomainName"] == {"Ref": "ReplicaBucketDomainName"}
    assert stacks["prod"]["edge"].parameters["ReplicaBucketDomainName"]["stack"] == "shop-dr-assets-replica"
    assert stacks["dr"]["assets-replica"].region == "eu-central-1"
    (group,) = config["OriginGroups"]["Items"]
    assert [m["OriginId"] for m in group["Members"]["Items"]] == ["assets", "assets-standby"]
    assert {500, 502, 503, 504} <= set(group["FailoverCriteria"]["StatusCodes"]["Items"])
    default = config["DefaultCacheBehavior"]  # web owns /*: the default behaviour is the load balancer's
    # CloudFront fails over only behaviours limited to GET, HEAD (and OPTIONS): the load balancer's
    # behaviours take every method and move by DNS.
    assets, api = config["CacheBehaviors"]
    assert (assets["PathPattern"], assets["TargetOriginId"]) == ("/assets/*", group["Id"])
    assert set(assets["AllowedMethods"]) <= {"GET", "HEAD", "OPTIONS"}
    assert (default["TargetOriginId"], api["TargetOriginId"]) == ("load-balancer", "load-balancer")


def test_the_dr_distribution_serves_the_replica_which_both_distributions_may_read(stacks) -> None:
    dr_edge = stacks["dr"]["edge"]
    assert resources(dr_edge.body, "AWS::S3::Bucket") == {}
    (origin,) = (o for o in edge_config(stacks, "dr")["Origins"] if o["Id"] == "assets")
    assert origin["DomainName"] == {"Fn::ImportValue": "shop-dr-assets-replica-ReplicaBucketDomainName"}
    (policy,) = resources(dr_edge.body, "AWS::S3::BucketPolicy").values()
    assert policy["Properties"]["Bucket"] == {"Fn::ImportValue": "shop-dr-assets-replica-ReplicaBucketName"}
    deny, read = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny"
    arn = "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${%s}"
    assert read["Condition"] == {
        "StringEquals": {"AWS:SourceArn": [{"Fn::Sub": arn % "Distribution"}, {"Fn::Sub": arn % "DistributionId"}]}
    }
    assert dr_edge.parameters["DistributionId"] == {"stack": "shop-prod-edge", "output": "DistributionId"}


def test_cloudfront_may_decrypt_assets_for_this_accounts_distributions_only(stacks) -> None:
    for env in ENVIRONMENTS:
        policy = stacks[env]["keys"].body["Resources"]["DataKey"]["Properties"]["KeyPolicy"]
        (statement,) = (s for s in policy["Statement"] if s["Principal"] == {"Service": "cloudfront.amazonaws.com"})
        assert statement["Action"] == ["kms:Decrypt"]
        assert statement["Condition"] == {
            "ArnLike": {
                "AWS:SourceArn": {"Fn::Sub": "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/*"}
            }
        }


# --- the API's origin name: Route 53 failover ---------------------------------------------------


def test_route53_fails_the_api_origin_over_to_the_dr_load_balancer(stacks, environments) -> None:
    assert "dns" not in stacks["dr"] and "dns" not in stacks["staging"]
    dns = stacks["prod"]["dns"]
    records = resources(dns.body, "AWS::Route53::RecordSet")
    primary, secondary = records["PrimaryRecord"]["Properties"], records["SecondaryRecord"]["Properties"]
    name = environments["prod"].edge.origin_domain + "."
    zone = environments["dr"].dr.dns.hosted_zone_id
    assert (primary["Name"], primary["HostedZoneId"], primary["Failover"]) == (name, zone, "PRIMARY")
    assert (secondary["Name"], secondary["HostedZoneId"], secondary["Failover"]) == (name, zone, "SECONDARY")
    # The primary record follows the failover gate: a CALCULATED check over the primary's plain
    # checks with threshold 0, always healthy (Route 53 API Reference, UpdateHealthCheck, HealthThreshold:
    # "If you specify 0, Route 53 always considers this health check to be healthy") until the
    # runbook's promotion step opens it (dns.open_threshold): the API name waits for the database.
    assert primary["HealthCheckId"] == {"Ref": "FailoverGate"}
    assert primary["AliasTarget"]["EvaluateTargetHealth"] is False  # would bypass the gate
    assert secondary["AliasTarget"]["EvaluateTargetHealth"] is True
    gate = dns.body["Resources"]["FailoverGate"]["Properties"]["HealthCheckConfig"]
    plain = [
        {"Ref": "LoadBalancerHealthCheck"},
        {"Ref": "TargetGroupHealthCheck"},
        {"Ref": "GreenTargetGroupHealthCheck"},
    ]
    assert gate == {"Type": "CALCULATED", "ChildHealthChecks": plain, "HealthThreshold": 0}
    assert dns.body["Outputs"]["FailoverGateHealthCheckId"]["Value"] == {"Ref": "FailoverGate"}
    assert primary["AliasTarget"]["DNSName"] == {"Fn::ImportValue": "shop-prod-platform-LoadBalancerDnsName"}
    assert secondary["AliasTarget"]["DNSName"] == {"Ref": "LoadBalancerDnsName"}
    assert secondary["AliasTarget"]["HostedZoneId"] == {"Ref": "LoadBalancerHostedZoneId"}
    assert dns.parameters["LoadBalancerDnsName"] == {"stack": "shop-dr-platform", "output": "LoadBalancerDnsName"}
    checks = {
        n: r["Properties"]["HealthCheckConfig"] for n, r in resources(dns.body, "AWS::Route53::HealthCheck").items()
    }
    check = checks["LoadBalancerHealthCheck"]
    assert check["Type"] == "HTTPS" and check["Port"] == 443
    assert check["FullyQualifiedDomainName"] == {"Fn::ImportValue": "shop-prod-platform-LoadBalancerDnsName"}
    assert check["ResourcePath"] == environments["dr"].dr.dns.health_check_path
    # ...the API service's own health path, not another service's: a web-only failure keeps the API
    services = environments["prod"].services
    assert check["ResourcePath"] == services["api"].health_check.path
    assert check["ResourcePath"] != services["web"].health_check.path


def test_the_primarys_check_is_the_load_balancer_and_a_healthy_colour_of_the_api(stacks, environments) -> None:
    """PrimaryHealthCheck: CALCULATED over the load balancer's HTTPS check and one CLOUDWATCH_METRIC
    check per colour, healthy with 2 of them (the load balancer and the live colour: between releases
    the idle one has no target); no calculated check watches another, which Route 53 refuses ("You
    can't configure a calculated health check to monitor the health of other calculated health
    checks": Route 53 Developer Guide, "Values that you specify when you create or update health checks")."""
    dns = stacks["prod"]["dns"].body
    checks = {n: r["Properties"]["HealthCheckConfig"] for n, r in resources(dns, "AWS::Route53::HealthCheck").items()}
    assert set(checks) == {
        "FailoverGate",
        "PrimaryHealthCheck",
        "LoadBalancerHealthCheck",
        "TargetGroupHealthCheck",
        "GreenTargetGroupHealthCheck",
    }
    primary = checks["PrimaryHealthCheck"]
    assert primary == {
        "Type": "CALCULATED",
        "ChildHealthChecks": [
            {"Ref": "LoadBalancerHealthCheck"},
            {"Ref": "TargetGroupHealthCheck"},
            {"Ref": "GreenTargetGroupHealthCheck"},
        ],
        "HealthThreshold": 2,  # the load balancer and one colour
    }
    calculated = {n for n, c in checks.items() if c["Type"] == "CALCULATED"}
    for name in calculated:
        assert not {ref["Ref"] for ref in checks[name]["ChildHealthChecks"]} & calculated, name
    api = stacks["prod"]["svc-api"].body
    for group in ("TargetGroup", "GreenTargetGroup"):
        config = checks[f"{group}HealthCheck"]
        assert config == {
            "Type": "CLOUDWATCH_METRIC",
            "AlarmIdentifier": {
                "Name": {"Ref": f"{group}HealthAlarm"},  # Ref of an alarm: its name
                "Region": environments["prod"].region,  # the alarm's region: this stack's, the target groups'
            },
            # CloudWatch cannot judge the alarm (a region down): not healthy
            "InsufficientDataHealthStatus": "Unhealthy",
        }
        output = api["Outputs"][f"{group}FullName"]
        assert output["Value"] == {"Fn::GetAtt": [group, "TargetGroupFullName"]}
        assert output["Export"]["Name"] == f"shop-prod-svc-api-{group}FullName"
    # the dns stack deploys after the service stack whose target groups it reads
    assert "shop-prod-svc-api" in stacks["prod"]["dns"].depends_on
    assert "shop-prod-dns" in stacks["prod"]["edge-alarms"].depends_on
    # only the checked service exports them
    assert not any(key.endswith("TargetGroupFullName") for key in stacks["prod"]["svc-web"].body.get("Outputs", {}))


def test_the_target_health_alarms_are_what_route53_and_elb_document(stacks) -> None:
    """Each colour's alarm: AWS/ApplicationELB HealthyHostCount with the dimensions TargetGroup and
    LoadBalancer ("CloudWatch metrics for your Application Load Balancer"), a plain statistic Route 53
    supports (Average, Minimum, Maximum, Sum, SampleCount; no extended statistic, no metric math:
    AWS::Route53::HealthCheck AlarmIdentifier), standard resolution (a period of 60 s or more),
    missing data breaching (no report is no healthy target), and no action (the idle colour stays in
    ALARM between releases; NoHealthyTargetAlarm notifies)."""
    dns = stacks["prod"]["dns"].body["Resources"]
    api = stacks["prod"]["svc-api"].body["Resources"]
    for group in ("TargetGroup", "GreenTargetGroup"):
        alarm = dns[f"{group}HealthAlarm"]
        assert alarm["Type"] == "AWS::CloudWatch::Alarm"
        props = alarm["Properties"]
        assert (props["Namespace"], props["MetricName"]) == ("AWS/ApplicationELB", "HealthyHostCount")
        assert props["Dimensions"] == [
            {"Name": "TargetGroup", "Value": {"Fn::ImportValue": f"shop-prod-svc-api-{group}FullName"}},
            {"Name": "LoadBalancer", "Value": {"Fn::ImportValue": "shop-prod-platform-LoadBalancerFullName"}},
        ]
        # the api's target group, on the load balancer its listener rule is on
        assert api[group]["Type"] == "AWS::ElasticLoadBalancingV2::TargetGroup"
        listener = api["ListenerRule"]["Properties"]["ListenerArn"]
        assert listener == {"Fn::ImportValue": "shop-prod-platform-HttpsListenerArn"}
        assert props["Statistic"] in {"Average", "Minimum", "Maximum", "Sum", "SampleCount"}
        assert "ExtendedStatistic" not in props and "Metrics" not in props
        assert props["Period"] >= 60
        assert (props["ComparisonOperator"], props["Threshold"]) == ("LessThanThreshold", 1.0)
        assert props["TreatMissingData"] == "breaching"
        assert "AlarmActions" not in props and "OKActions" not in props


def test_with_ingress_internet_the_services_own_rule_answers_the_check(settings_dir: Path) -> None:
    """Without CloudFront the check needs no rule of its own: the api's rule (the one its release
    moves between colours) answers it; the target health is checked the same way."""
    edit_yaml(settings_dir / "prod.yaml", platform__ingress="internet")
    edit_yaml(settings_dir / "dr.yaml", platform__ingress="internet")  # a DR pair shares its ingress
    built = build_environment(settings_dir, "prod")
    assert "HealthCheckListenerRule" not in built["dns"].body["Resources"]
    checks = resources(built["dns"].body, "AWS::Route53::HealthCheck")
    assert {"LoadBalancerHealthCheck", "TargetGroupHealthCheck", "GreenTargetGroupHealthCheck"} <= set(checks)


def test_a_service_with_one_target_group_gets_one_alarm_check(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "prod.yaml", deployment__strategy="rolling")
    built = build_environment(settings_dir, "prod")
    checks = resources(built["dns"].body, "AWS::Route53::HealthCheck")
    primary = checks["PrimaryHealthCheck"]["Properties"]["HealthCheckConfig"]
    assert primary["ChildHealthChecks"] == [{"Ref": "LoadBalancerHealthCheck"}, {"Ref": "TargetGroupHealthCheck"}]
    assert primary["HealthThreshold"] == 2  # both: the one group is the live one
    assert "GreenTargetGroupHealthCheck" not in checks
    assert "GreenTargetGroupHealthAlarm" not in built["dns"].body["Resources"]
    assert "TargetGroupHealthAlarm" in built["dns"].body["Resources"]
    assert set(built["svc-api"].body["Outputs"]) >= {"TargetGroupFullName"}
    assert "GreenTargetGroupFullName" not in built["svc-api"].body["Outputs"]


def _steps(text: str, section: str) -> str:
    start = text.index(f"## {section}")
    return text[start : text.index("\n## ", start + 1)]


def test_the_runbook_promotes_only_once_the_region_can_serve_and_moves_dns_only_after() -> None:
    runbook = BUILT.files["dr"]["RUNBOOK.md"]
    over = _steps(runbook, "Fail over")
    add, scale = over.index("aws rds create-db-instance"), over.index("aws ecs update-service")
    promote, gate = over.index("aws rds failover-global-cluster"), over.index("--health-threshold 2")
    assert add < scale < promote < gate  # pilot light: a writer and tasks before promoting, DNS after
    back = _steps(runbook, "Fail back")
    switch, close = back.index("aws rds switchover-global-cluster"), back.index("--health-threshold 0")
    assert switch < close < back.index("aws s3 sync")  # DNS back only once prod's database writes again
    assert "aws rds delete-db-instance" in back  # the pilot light's writer goes again
    rehearse = _steps(runbook, "Rehearse")
    # the rehearsal gives the headless cluster a writer first, switches back, removes it, and says what it costs
    order = [rehearse.index(c) for c in ("create-db-instance", "switchover-global-cluster", "delete-db-instance")]
    assert order == sorted(order)
    assert rehearse.count("switchover-global-cluster") == 2
    assert "writes fail" in rehearse and "billed by the" in rehearse and "undo" in rehearse


def test_without_dns_settings_there_are_no_failover_records(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "dr.yaml", dr={"protects": "prod", "posture": "pilot-light", "rto_minutes": 60, "rpo_minutes": 5}
    )
    assert "dns" not in build_environment(settings_dir, "prod")


def test_dns_failover_behind_cloudfront_admits_route53s_checkers_on_the_primary_only(settings_dir: Path) -> None:
    """Behind CloudFront (the default) the primary's load balancer takes a second group that admits
    Route 53's health checkers, so the failover check can pass; with ``ingress: internet`` it needs none."""
    built = build_all(settings_dir).stacks
    assert "AlbHealthCheckSecurityGroup" in built["prod"]["security"].body["Resources"]
    assert "AlbHealthCheckSecurityGroup" not in built["dr"]["security"].body["Resources"]
    edit_yaml(settings_dir / "prod.yaml", platform__ingress="internet")
    edit_yaml(settings_dir / "dr.yaml", platform__ingress="internet")  # a DR pair shares its ingress
    assert "AlbHealthCheckSecurityGroup" not in build_environment(settings_dir, "prod")["security"].body["Resources"]


def test_a_malformed_hosted_zone_id_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dr.yaml", dr__dns={"hosted_zone_id": "shop.example.com"})
    message = refusal(settings_dir, "dr")
    assert "dr.yaml" in message and "dr.dns.hosted_zone_id" in message


# --- the order across regions -------------------------------------------------------------------


def test_prods_manifest_brings_the_dr_stacks_its_edge_and_dns_need_first() -> None:
    manifest = json.loads(BUILT.files["prod"]["manifest.json"])
    names = [s["name"] for s in manifest["stacks"]]
    regions = {s["name"]: s["region"] for s in manifest["stacks"]}
    for needed in ("shop-dr-keys", "shop-dr-platform", "shop-dr-assets-replica"):
        assert regions[needed] == "eu-central-1"
        assert names.index(needed) < names.index("shop-prod-edge")
    assert names.index("shop-dr-platform") < names.index("shop-prod-dns")
    assert "shop-dr-data" not in names  # only what prod needs, not all of dr
    replica = next(s for s in manifest["stacks"] if s["name"] == "shop-dr-assets-replica")
    assert replica["templates"]["yaml"] == "../dr/assets-replica.yaml"
    assert checks.check_wiring([(Path("prod/manifest.json"), manifest)]) == []


@pytest.mark.parametrize("env", ["prod", "dr"])
def test_both_manifests_deploy_without_a_missing_output_and_catch_a_wrong_order(tmp_path: Path, env: str) -> None:
    manifest = json.loads(BUILT.files[env]["manifest.json"])
    assert checks.check_wiring([(tmp_path / "manifest.json", manifest)]) == []
    stacks = manifest["stacks"]
    moved = "shop-dr-assets-replica" if env == "prod" else "shop-prod-edge"
    consumer = "shop-prod-edge" if env == "prod" else "shop-dr-edge"
    stacks.append(stacks.pop(next(i for i, s in enumerate(stacks) if s["name"] == moved)))
    problems = [p.message for p in checks.check_wiring([(tmp_path / "manifest.json", manifest)])]
    assert any(
        m.startswith(f"{consumer} parameter ") and f"comes from {moved}, which is not deployed" in m for m in problems
    )


def test_interleave_lists_a_partner_stack_just_before_it_is_needed() -> None:
    def stack(name: str, *depends_on: str) -> Stack:
        return Stack(name, name, "r", {}, list(depends_on))

    own = [stack("a"), stack("b", "a", "x2"), stack("c", "b"), stack("d", "y")]
    external = [stack("x1"), stack("x2", "x1"), stack("y")]
    assert [s.name for s in interleave(own, external)] == ["a", "x1", "x2", "b", "c", "y", "d"]
    assert [s.name for s in interleave(own[:1], external)] == ["a", "x1", "x2", "y"]  # none is dropped


def test_without_dns_the_runbook_says_to_move_the_api_name_by_hand(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "dr.yaml", dr={"protects": "prod", "posture": "pilot-light", "rto_minutes": 60, "rpo_minutes": 5}
    )
    runbook = build_all(settings_dir).files["dr"]["RUNBOOK.md"]
    assert "- **API and web routes**: nothing. CloudFront cannot fail them over itself" in runbook
    traffic = "5. Traffic: point `origin.shop.example.com` (every web route's origin name) at `dr`'s load balancer"
    assert traffic in runbook
    assert "route53" not in runbook


def test_the_secret_replica_is_encrypted_with_the_dr_data_key(stacks) -> None:
    data = stacks["prod"]["data"]
    (replica,) = data.body["Resources"]["DatabaseSecret"]["Properties"]["ReplicaRegions"]
    assert replica == {"Region": "eu-central-1", "KmsKeyId": {"Ref": "DataKeyArn"}}
    assert data.parameters["DataKeyArn"] == {"stack": "shop-dr-keys", "output": "DataKeyArn"}
    names = [s["name"] for s in json.loads(BUILT.files["prod"]["manifest.json"])["stacks"]]
    assert names.index("shop-dr-keys") < names.index("shop-prod-data")


def test_people_hear_of_a_failed_replication_and_of_an_api_failover(stacks) -> None:
    monitoring = stacks["prod"]["monitoring"]
    alarms = resources(monitoring.body, "AWS::CloudWatch::Alarm")
    dimensions = {
        "SourceBucket": {"Fn::ImportValue": "shop-prod-edge-AssetsBucketName"},
        "DestinationBucket": {"Ref": "ReplicaBucketName"},
        "RuleId": "assets-to-dr",
    }
    for name, metric in (
        ("AssetsReplicationFailedAlarm", "OperationsFailedReplication"),
        ("AssetsReplicationLateAlarm", "ReplicationLatency"),
    ):
        props = alarms[name]["Properties"]
        assert (props["Namespace"], props["MetricName"]) == ("AWS/S3", metric)
        assert {d["Name"]: d["Value"] for d in props["Dimensions"]} == dimensions
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}]
    rule = stacks["prod"]["edge"].body["Resources"]["AssetsBucket"]["Properties"]["ReplicationConfiguration"]
    assert rule["Rules"][0]["Id"] == dimensions["RuleId"]  # the metric's dimension is the rule's id
    assert monitoring.parameters["ReplicaBucketName"] == {
        "stack": "shop-dr-assets-replica",
        "output": "ReplicaBucketName",
    }
    assert "AssetsReplicationFailedAlarm" not in resources(stacks["staging"]["monitoring"].body)

    edge_alarms = stacks["prod"]["edge-alarms"]
    assert edge_alarms.region == "us-east-1"  # where Route 53 publishes its health checks' metrics
    props = edge_alarms.body["Resources"]["ApiFailoverAlarm"]["Properties"]
    assert (props["Namespace"], props["MetricName"]) == ("AWS/Route53", "HealthCheckStatus")
    assert props["Dimensions"] == [{"Name": "HealthCheckId", "Value": {"Ref": "PrimaryHealthCheckId"}}]
    assert edge_alarms.parameters["PrimaryHealthCheckId"] == {
        "stack": "shop-prod-dns",
        "output": "PrimaryHealthCheckId",
    }
    assert "shop-prod-dns" in edge_alarms.depends_on


# --- images: pulled from ECR's replica in the DR region -------------------------------------------


@pytest.mark.parametrize(("env", "region"), [("dr", "eu-central-1"), ("prod", "eu-west-1"), ("staging", "eu-west-1")])
def test_services_pull_from_their_own_region_in_dr_and_from_the_registrys_elsewhere(stacks, env, region) -> None:
    for service in ("api", "web"):
        resources_ = stacks[env][f"svc-{service}"].body["Resources"]
        (container,) = resources_["TaskDefinition"]["Properties"]["ContainerDefinitions"]
        assert container["Image"] == {
            "Fn::Sub": f"444444444444.dkr.ecr.{region}.${{AWS::URLSuffix}}/shop/{service}:${{ImageTag}}"
        }
        statements = resources_["ExecutionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        (pull,) = [s for s in statements if s["Sid"] == "PullThisServicesImage"]
        assert pull["Resource"] == [
            {"Fn::Sub": f"arn:${{AWS::Partition}}:ecr:{region}:444444444444:repository/shop/{service}"}
        ]


def test_the_dr_release_files_name_the_same_replica_as_the_service_stack(codedeploy_built) -> None:
    stacks = codedeploy_built.stacks
    files = delivery_files(codedeploy_built.project, {e: list(s.values()) for e, s in stacks.items()})
    for service in ("api", "web"):
        (container,) = json.loads(files[f"{service}/taskdef-dr.json"])["containerDefinitions"]
        (in_stack,) = stacks["dr"][f"svc-{service}"].body["Resources"]["TaskDefinition"]["Properties"][
            "ContainerDefinitions"
        ]
        host = in_stack["Image"]["Fn::Sub"].split("/")[0].replace("${AWS::URLSuffix}", "amazonaws.com")
        assert container["image"] == f"{host}/shop/{service}:<COMMIT_ID>"
        assert ".eu-central-1." in host
        # the build fills in the tag, since imageDetail.json names the registry's region
        assert 'sed -i "s#<COMMIT_ID>#$COMMIT_ID#g" taskdef-dr.json' in files[f"{service}/buildspec.yml"]
        (prod,) = json.loads(files[f"{service}/taskdef-prod.json"])["containerDefinitions"]
        assert prod["image"] == "<IMAGE1_NAME>"  # prod: CodeDeploy's image, in the registry's region


def test_the_dr_release_action_takes_its_image_from_the_task_definition(codedeploy_built) -> None:
    pipeline = codedeploy_built.project_stacks["delivery-api"].body["Resources"]["Pipeline"]["Properties"]
    actions = {a["Name"]: a for stage in pipeline["Stages"] for a in stage["Actions"]}
    assert "Image1ArtifactName" not in actions["ReleaseDr"]["Configuration"]
    assert actions["ReleaseDr"]["Region"] == "eu-central-1"
    assert actions["ReleaseProd"]["Configuration"]["Image1ArtifactName"] == "BuildOutput"


def test_the_runbook_says_the_images_are_already_there_and_how_to_check() -> None:
    runbook = BUILT.files["dr"]["RUNBOOK.md"]
    assert "- **Images**: ECR replicates every image pushed to `shop/*` in `eu-west-1`" in runbook
    # with dr's credentials, as the rest of the runbook: the pull's action, which the replica's policy grants
    assert "aws ecr batch-get-image --region eu-central-1 --registry-id 444444444444 \\\n" in runbook
    assert "  --repository-name shop/api --image-ids imageTag=<tag> \\\n" in runbook
    assert "describe-images" not in runbook
    # replication's status is the registry's: its block says whose credentials it needs
    block = runbook.split("# with the credentials of account 444444444444\n", 1)[1].split("```", 1)[0]
    assert block.startswith("aws ecr describe-image-replication-status --region eu-west-1 --registry-id 444444444444 ")


def test_dr_releases_the_same_way_its_stack_naming_the_replica(stacks) -> None:
    # released through its stack like every environment: the release writes the tag, the stack's
    # own task definition names the replica in dr's region (no release file names an image)
    pipeline = BUILT.project_stacks["delivery-web"].body["Resources"]["Pipeline"]["Properties"]
    actions = {a["Name"]: a for stage in pipeline["Stages"] for a in stage["Actions"]}
    configuration = actions["ReleaseDr"]["Configuration"]
    variables = {v["name"]: v["value"] for v in json.loads(configuration["EnvironmentVariables"]["Fn::Sub"])}
    assert (variables["RELEASE_REGION"], variables["PARAMETER_NAME"]) == ("eu-central-1", "/shop/dr/web/image-tag")
    (container,) = stacks["dr"]["svc-web"].body["Resources"]["TaskDefinition"]["Properties"]["ContainerDefinitions"]
    assert container["Image"]["Fn::Sub"].startswith("444444444444.dkr.ecr.eu-central-1.")
    assert container["Image"]["Fn::Sub"].endswith(":${ImageTag}")


# --- AWS Backup: the primary's daily backups, copied to the DR region's locked vault ------------------


def test_prods_daily_backups_are_copied_to_the_dr_vault(stacks, environments) -> None:
    body = stacks["prod"]["data"].body
    ((name, plan),) = resources(body, "AWS::Backup::BackupPlan").items()
    (rule,) = plan["Properties"]["BackupPlan"]["BackupPlanRule"]
    days = environments["prod"].database.backup_plan_retention_days
    assert rule["TargetBackupVault"] == "shop-prod"
    assert rule["ScheduleExpression"].startswith("cron(") and rule["ScheduleExpression"].endswith(" * * ? *)")
    assert rule["Lifecycle"] == {"DeleteAfterDays": days}
    (copy,) = rule["CopyActions"]
    assert copy == {"DestinationBackupVaultArn": {"Ref": "BackupVaultArn"}, "Lifecycle": {"DeleteAfterDays": days}}
    sources = body["Metadata"]["InfraTemplatesParameterSources"]
    assert sources["BackupVaultArn"] == {"Stack": "shop-dr-keys", "Output": "BackupVaultArn"}
    (selection,) = resources(body, "AWS::Backup::BackupSelection").values()
    props = selection["Properties"]
    assert props["BackupPlanId"] == {"Ref": name}
    assert props["BackupSelection"]["Resources"] == [{"Fn::GetAtt": ["Cluster", "DBClusterArn"]}]
    assert props["BackupSelection"]["IamRoleArn"] == {"Fn::GetAtt": ["BackupRole", "Arn"]}


def test_the_dr_vault_is_locked_with_its_region_key_and_receives_no_plan_of_its_own(stacks, environments) -> None:
    keys = stacks["dr"]["keys"].body
    vault = keys["Resources"]["BackupVault"]
    assert vault["Properties"]["BackupVaultName"] == "shop-dr"
    assert vault["Properties"]["EncryptionKeyArn"] == {"Fn::GetAtt": ["DataKey", "Arn"]}
    # Governance mode: no ChangeableForDays, so no irreversible compliance-mode lock date.
    assert vault["Properties"]["LockConfiguration"] == {
        "MinRetentionDays": environments["dr"].database.backup_plan_retention_days,
        "MaxRetentionDays": 36500,
    }
    assert keys["Outputs"]["BackupVaultArn"]["Value"] == {"Fn::GetAtt": ["BackupVault", "BackupVaultArn"]}
    assert not resources(stacks["dr"]["data"].body, "AWS::Backup::BackupPlan")


@pytest.mark.parametrize(("env", "locked"), [("dev", False), ("staging", False), ("prod", True)])
def test_every_primary_backs_up_daily_and_only_production_vaults_are_locked(stacks, env, locked) -> None:
    vault = stacks[env]["keys"].body["Resources"]["BackupVault"]
    assert ("LockConfiguration" in vault["Properties"]) is locked
    assert vault["DeletionPolicy"] == ("Retain" if locked else "Delete")
    (plan,) = resources(stacks[env]["data"].body, "AWS::Backup::BackupPlan").values()
    (rule,) = plan["Properties"]["BackupPlan"]["BackupPlanRule"]
    assert ("CopyActions" in rule) is (env == "prod")  # only prod has a DR environment


def test_the_data_key_lets_aws_backup_encrypt_the_vault(stacks) -> None:
    statement = next(
        s
        for s in stacks["dr"]["keys"].body["Resources"]["DataKey"]["Properties"]["KeyPolicy"]["Statement"]
        if s["Sid"] == "DataServicesOfThisAccount"
    )
    services = statement["Condition"]["StringEquals"]["kms:ViaService"]
    assert {"Fn::Sub": "backup.${AWS::Region}.amazonaws.com"} in services


def test_a_dr_vault_keeping_copies_longer_than_prod_sends_them_is_refused(settings_dir: Path) -> None:
    edit_yaml(settings_dir / "dr.yaml", database__backup_plan_retention_days=90)
    message = project_refusal(settings_dir)
    assert "dr.yaml: database.backup_plan_retention_days: is 90, the minimum its locked vault keeps" in message
    assert "use at most that" in message
