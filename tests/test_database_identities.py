"""Database identities: each service signs in as its own user with IAM database authentication (no
password anywhere in a service), users are created by the data stack through the RDS Data API, and
the administrator's secret rotates in every environment without reaching a running task."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from conftest import ENVIRONMENTS, edit_yaml, refusal, resources, walk

from infra_templates.rules._data_api import data_api_problem
from templates import data_access

PRIMARIES = [env for env in ENVIRONMENTS if env != "dr"]
MASTER_SECRET_NAMES = ("data-SecretArn", "data-SecretResource", "DatabaseSecret", "MasterUserSecret")


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_no_service_template_references_the_master_secret_or_reads_a_password(stacks, env) -> None:
    services = [layer for layer in stacks[env] if layer.startswith("svc-")]
    assert services
    for layer in services:
        stack = stacks[env][layer]
        for name in MASTER_SECRET_NAMES:
            assert name not in stack.json, f"{env}/{layer} references {name}"
        for container in walk(stack.body):
            if isinstance(container, dict) and "ContainerDefinitions" in container:
                for definition in container["ContainerDefinitions"]:
                    names = {s["Name"] for s in definition.get("Secrets", [])}
                    names |= {e["Name"] for e in definition.get("Environment", [])}
                    assert "DB_PASSWORD" not in names


@pytest.mark.parametrize("env", PRIMARIES)
def test_each_service_with_database_access_gets_its_user_created_by_the_data_stack(stacks, environments, env) -> None:
    body = stacks[env]["data"].body
    users = resources(body, "AWS::CloudFormation::CustomResource")
    wanted = sorted(n for n, s in environments[env].services.items() if s.database_access)
    assert wanted == ["api", "nightly"]  # the nightly job (kind job) reaches the database too
    assert set(users) == {"DatabaseUsers"}  # one resource for every user: the template does not grow per service
    user = users["DatabaseUsers"]
    assert user["DependsOn"] == ["WriterInstance"]  # the Data API runs on the writer only
    props = user["Properties"]
    assert props["ServiceToken"] == {"Fn::GetAtt": ["DatabaseUsersFunction", "Arn"]}
    assert props["Users"] == ["svc_api", "svc_nightly"]
    assert props["ClusterArn"] == {"Fn::GetAtt": ["Cluster", "DBClusterArn"]}
    assert props["Database"] == "shop"
    for service in wanted:  # each user gets exactly the statements user_statements computes for it
        assert [sql.replace(props["Placeholder"], f"svc_{service}") for sql in props["Statements"]] == (
            data_access.user_statements(environments[env], service)
        )
    assert 'GRANT rds_iam TO "svc_api"' in data_access.user_statements(environments[env], "api")
    assert body["Resources"]["Cluster"]["Properties"]["EnableHttpEndpoint"] is True
    # the function reaches this cluster and the administrator secret only
    policy = body["Resources"]["DatabaseUsersFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    granted = {s["Sid"]: s for s in policy["Statement"]}
    assert granted["RunSqlOnThisCluster"]["Resource"] == [{"Fn::GetAtt": ["Cluster", "DBClusterArn"]}]
    assert granted["ReadTheAdministratorSecret"]["Resource"] == [props["SecretArn"]]


def test_a_dr_cluster_receives_the_users_with_the_data(stacks) -> None:
    body = stacks["dr"]["data"].body
    assert not resources(body, "AWS::CloudFormation::CustomResource")
    assert not resources(body, "AWS::Lambda::Function")
    assert "EnableHttpEndpoint" not in body["Resources"]["Cluster"]["Properties"]
    # but it exports its own resource id: its users' rds-db:connect ARNs name it
    assert "shop-dr-data-ClusterResourceId" in stacks["dr"]["data"].exports


def test_user_statements_per_engine(environments) -> None:
    postgres = data_access.user_statements(environments["prod"], "order-api")
    assert postgres[0].startswith("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'svc_order_api')")
    assert 'GRANT rds_iam TO "svc_order_api"' in postgres
    assert 'GRANT CONNECT ON DATABASE "shop" TO "svc_order_api"' in postgres
    mysql = environments["prod"].model_copy(
        update={"database": environments["prod"].database.model_copy(update={"engine": "aurora-mysql"})}
    )
    assert data_access.user_statements(mysql, "api") == [
        "CREATE USER IF NOT EXISTS 'svc_api'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL",
        "GRANT ALL PRIVILEGES ON `shop`.* TO 'svc_api'@'%'",
    ]


@pytest.mark.parametrize("env", ["dev", "staging"])
def test_an_rds_managed_master_secret_is_rotated_by_rds(stacks, env) -> None:
    body = stacks[env]["data"].body
    assert body["Resources"]["Cluster"]["Properties"]["ManageMasterUserPassword"] is True
    assert not resources(body, "AWS::SecretsManager::RotationSchedule")


def test_a_generated_master_secret_has_a_rotation_schedule(stacks) -> None:
    body = stacks["prod"]["data"].body
    (schedule,) = resources(body, "AWS::SecretsManager::RotationSchedule").values()
    props = schedule["Properties"]
    assert props["SecretId"] == {"Ref": "DatabaseSecret"}
    assert props["RotationRules"] == {"AutomaticallyAfterDays": data_access.MASTER_ROTATION_DAYS}
    assert props["RotationLambdaARN"] == {"Fn::GetAtt": ["MasterRotationFunction", "Arn"]}
    assert set(schedule["DependsOn"]) == {"DatabaseSecretAttachment", "WriterInstance", "MasterRotationPermission"}
    permission = body["Resources"]["MasterRotationPermission"]["Properties"]
    assert permission["Principal"] == "secretsmanager.amazonaws.com"
    assert permission["SourceArn"] == {"Ref": "DatabaseSecret"}
    policy = body["Resources"]["MasterRotationFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    granted = {s["Sid"]: s for s in policy["Statement"]}
    assert granted["RotateTheAdministratorSecret"]["Resource"] == [{"Ref": "DatabaseSecret"}]
    # each new version replicates to dr's region, re-encrypted with dr's data key
    assert granted["EncryptTheReplicasVersion"]["Resource"] == [{"Ref": "DataKeyArn"}]
    assert granted["EncryptTheReplicasVersion"]["Condition"] == {
        "StringEquals": {"kms:ViaService": "secretsmanager.eu-central-1.amazonaws.com"}
    }
    # dr holds a replica of prod's secret: it rotates in prod and replicates
    assert not resources(stacks["dr"]["data"].body, "AWS::SecretsManager::RotationSchedule")


class FakeSecrets:
    """Secrets Manager as the rotation function sees it: versions with staging labels (boto3's
    keyword arguments, read from ``call``)."""

    class exceptions:  # noqa: N801  (boto3's shape: client.exceptions.ResourceNotFoundException)
        class ResourceNotFoundException(Exception):  # noqa: N818  (boto3's name)
            pass

    def __init__(self, value: dict[str, str]) -> None:
        self.values = {"v1": json.dumps(value)}
        self.stages = {"v1": ["AWSCURRENT"], "v2": ["AWSPENDING"]}

    def describe_secret(self, **call: str) -> dict[str, Any]:
        return {"VersionIdsToStages": {k: list(v) for k, v in self.stages.items()}}

    def get_secret_value(self, **call: str) -> dict[str, str]:
        stage = call["VersionStage"]
        version = call.get("VersionId") or next(v for v, s in self.stages.items() if stage in s)
        if version not in self.values or stage not in self.stages.get(version, []):
            raise self.exceptions.ResourceNotFoundException(version)
        return {"SecretString": self.values[version]}

    def get_random_password(self, **call: Any) -> dict[str, str]:
        assert "'" in call["ExcludeCharacters"] and "\\" in call["ExcludeCharacters"]
        return {"RandomPassword": "N3w" + "x" * (call["PasswordLength"] - 3)}

    def put_secret_value(self, **call: Any) -> None:
        assert call["VersionStages"] == ["AWSPENDING"]
        self.values[call["ClientRequestToken"]] = call["SecretString"]

    def update_secret_version_stage(self, **call: str) -> None:
        self.stages[call["RemoveFromVersionId"]].remove(call["VersionStage"])
        self.stages[call["MoveToVersionId"]].append(call["VersionStage"])


class FakeDataApi:
    def __init__(self, failures: list[str] | None = None) -> None:
        self.calls: list[dict[str, str]] = []
        self.failures = list(failures or [])

    def execute_statement(self, **call: str) -> dict[str, Any]:
        if self.failures:
            from botocore.exceptions import ClientError  # noqa: PLC0415

            raise ClientError({"Error": {"Code": self.failures.pop(0), "Message": "resuming"}}, "ExecuteStatement")
        self.calls.append(call)
        return {}


def load_handler(code: str, monkeypatch: pytest.MonkeyPatch, clients: dict[str, Any]) -> Any:
    """The inline function's module, run against fake AWS clients (and cfnresponse, which Lambda
    provides to inline code)."""
    fake_boto3 = types.SimpleNamespace(client=lambda name: clients[name])
    sent: list[tuple[str, str]] = []
    fake_response = types.SimpleNamespace(
        SUCCESS="SUCCESS",
        FAILED="FAILED",
        send=lambda event, context, status, data, physical, reason="": sent.append((status, physical)),
    )
    monkeypatch.setitem(sys.modules, "boto3", fake_boto3)
    monkeypatch.setitem(sys.modules, "cfnresponse", fake_response)
    module = types.ModuleType("index")
    exec(compile(code, "index.py", "exec"), module.__dict__)
    module.sent = sent  # type: ignore[attr-defined]
    return module


def test_a_rotation_rehearsal_changes_the_password_and_never_reaches_a_running_task(
    stacks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The four rotation steps against fakes: the new password is set on the cluster through the
    Data API as the current administrator, then becomes AWSCURRENT. A running task holds no copy of
    any password (test_no_service_template_references_the_master_secret_or_reads_a_password): its
    connections sign in with IAM tokens, which a rotation does not touch."""
    body = stacks["prod"]["data"].body
    variables = body["Resources"]["MasterRotationFunction"]["Properties"]["Environment"]["Variables"]
    for name, value in variables.items():
        monkeypatch.setenv(name, value if isinstance(value, str) else "arn:aws:rds:eu-west-1:333333333333:cluster:x")
    secrets = FakeSecrets({"username": "shop_admin", "password": "old"})
    data = FakeDataApi()
    handler = load_handler(
        data_access.ROTATION_CODE, monkeypatch, {"secretsmanager": secrets, "rds-data": data}
    ).handler
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        handler({"SecretId": "arn:secret", "ClientRequestToken": "v2", "Step": step}, None)
    (call,) = data.calls
    new = "N3w" + "x" * 29
    assert call["sql"] == f"ALTER USER \"shop_admin\" WITH PASSWORD '{new}'"
    assert call["secretArn"] == "arn:secret"  # signed in as the administrator whose password changes
    assert secrets.stages == {"v1": [], "v2": ["AWSPENDING", "AWSCURRENT"]}
    assert json.loads(secrets.values["v2"]) == {"username": "shop_admin", "password": new}
    # a retried createSecret keeps the pending version it made
    handler({"SecretId": "arn:secret", "ClientRequestToken": "v2", "Step": "createSecret"}, None)
    assert len(data.calls) == 1


def test_the_users_function_waits_for_a_paused_writer_and_reports_to_cloudformation(
    stacks, monkeypatch: pytest.MonkeyPatch
) -> None:
    props = stacks["dev"]["data"].body["Resources"]["DatabaseUsers"]["Properties"]
    data = FakeDataApi(failures=["DatabaseResumingException"])
    module = load_handler(data_access.USERS_CODE, monkeypatch, {"rds-data": data})
    monkeypatch.setattr(module.time, "sleep", lambda seconds: None)
    event = {"RequestType": "Create", "ResourceProperties": {**props, "ClusterArn": "c", "SecretArn": "s"}}
    module.handler(event, None)
    expected = [sql.replace("{user}", user) for user in props["Users"] for sql in props["Statements"]]
    assert [c["sql"] for c in data.calls] == expected and "{user}" not in str(expected)
    assert module.sent == [("SUCCESS", "database-users")]
    # an update (a service added) runs every statement again for every user: each is safe to repeat
    module.handler({**event, "RequestType": "Update"}, None)
    assert [c["sql"] for c in data.calls] == expected * 2
    # a delete leaves the users (they own the services' tables) and still answers CloudFormation
    module.handler({**event, "RequestType": "Delete"}, None)
    assert len(data.calls) == 2 * len(expected) and module.sent[-1] == ("SUCCESS", "database-users")
    # any other error fails the stack operation instead of leaving it waiting
    failing = FakeDataApi(failures=["BadRequestException"])
    module = load_handler(data_access.USERS_CODE, monkeypatch, {"rds-data": failing})
    module.handler(event, None)
    assert module.sent == [("FAILED", "database-users")]


def test_data_api_contract() -> None:
    assert data_api_problem("aurora-postgresql", "17.5", "eu-west-1", None) is None
    assert data_api_problem("aurora-postgresql", "16.0", "eu-west-1", None) is not None
    assert data_api_problem("aurora-postgresql", "17.5", "eu-central-2", None) is not None
    assert data_api_problem("aurora-postgresql", "17.5", "eu-west-1", "db.t4g.medium") is not None
    assert data_api_problem("aurora-mysql", "8.0.mysql_aurora.3.06.0", "eu-west-1", None) is not None
    assert data_api_problem("aurora-mysql", "8.0.mysql_aurora.3.08.2", "eu-west-1", "db.r7g.large") is None


def test_a_t_class_cluster_with_database_access_is_refused(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "staging.yaml",
        database__capacity={"mode": "provisioned", "instance_class": "db.t4g.medium", "readers": 1},
    )
    message = refusal(settings_dir)
    assert "services.api.database_access" in message and "T instance classes" in message


def test_a_mysql_service_name_too_long_for_a_user_is_refused(settings_dir: Path) -> None:
    edit_yaml(
        settings_dir / "defaults.yaml",
        database__engine="aurora-mysql",
        database__engine_version="8.0.mysql_aurora.3.08.2",
    )
    long_name = "a" * 29
    edit_yaml(
        settings_dir / "staging.yaml",
        **{
            f"services__{long_name}": {
                "port": 8001,
                "cpu": 256,
                "memory": 512,
                "desired_count": 1,
                "autoscaling": {"min": 1, "max": 2, "cpu_target": 60},
                "routing": {"paths": ["/x/*"]},
                "health_check": {"path": "/healthz"},
                "database_access": True,
            }
        },
    )
    message = refusal(settings_dir)
    assert f"services.{long_name}.database_access" in message and "32 characters" in message
