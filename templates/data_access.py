"""The data layer's identities: each service's own database user, created through the RDS Data API
by a custom resource (no manual step, no driver, no VPC access), and the rotation of a generated
administrator secret (an RDS-managed one RDS rotates itself).

Why IAM database authentication for the services (README, "Database identities"): a token is signed
per connection with the task role's credentials and lives 15 minutes, so nothing is stored and
nothing rotates; a rotation of the administrator's password never reaches a running task. AWS
recommends it below 200 new connections per second ("IAM database authentication", Amazon Aurora
User Guide: "IAM database authentication throttles connections at 200 connections per second";
connections that reuse a token are not throttled), which a connection pool per task keeps far below.
"""

from __future__ import annotations

from typing import Any

from awacs import kms as kms_actions
from awacs import rds_data
from awacs import secretsmanager as secrets_actions
from awacs.aws import StringEquals
from troposphere import GetAtt, Ref, Sub, Template, cloudformation, rds, secretsmanager

from infra_templates import constructs, iam
from infra_templates.config import Environment
from infra_templates.layer import LayerContext
from templates.contracts import Data, Keys, database_user

# Inline (ZipFile) Python code may import cfnresponse ("cfn-response module", CloudFormation User
# Guide). For each user it runs each statement the data layer computed (USER in them replaced by the
# user's name) through the RDS Data API, signed in as the administrator with the master secret
# (ExecuteStatement, secretArn). One resource holds every user, not one resource each: a resource
# per service put about 445 bytes per service in the data stack, past CloudFormation's 51,200-byte
# template body from 54 services on ("CloudFormation quotas": template body size in a request).
# A paused Serverless v2 writer answers DatabaseResumingException and resumes ("Scaling to Zero
# ACUs with automatic pause and resume for Aurora Serverless v2": "the Data API ... returns an
# error ... try again"): retried. On delete it does nothing: the users own the services' tables,
# which stay with the data.
USERS_CODE = """\
import time

import boto3
import cfnresponse
from botocore.exceptions import ClientError

RETRIED = ("DatabaseResumingException", "DatabaseUnavailableException")
PHYSICAL_ID = "database-users"


def handler(event, context):
    properties = event["ResourceProperties"]
    try:
        if event["RequestType"] in ("Create", "Update"):
            data = boto3.client("rds-data")
            for user in properties["Users"]:
                for sql in properties["Statements"]:
                    for attempt in range(40):
                        try:
                            data.execute_statement(
                                resourceArn=properties["ClusterArn"],
                                secretArn=properties["SecretArn"],
                                database=properties["Database"],
                                sql=sql.replace(properties["Placeholder"], user),
                            )
                            break
                        except ClientError as error:
                            if error.response["Error"]["Code"] not in RETRIED or attempt == 39:
                                raise
                            time.sleep(15)
        cfnresponse.send(event, context, cfnresponse.SUCCESS, {}, PHYSICAL_ID)
    except Exception as error:  # CloudFormation must hear of any failure, or it waits
        print(repr(error))
        cfnresponse.send(event, context, cfnresponse.FAILED, {}, PHYSICAL_ID, reason=repr(error)[:200])
"""

USERS_TIMEOUT_SECONDS = 900  # Lambda's maximum: a paused writer resumes within it, with room to spare

# The rotation of a generated administrator secret, single user, through the RDS Data API: the four
# steps of "Lambda rotation functions" (AWS Secrets Manager User Guide) as AWS's single-user
# templates take them. The Data API signs in with the secret's AWSCURRENT version only, so setSecret
# changes the password as the current administrator and testSecret cannot sign in with the pending
# one before finishSecret makes it current: the next Data API call (the users function's, or
# `aws rds-data execute-statement`) is the test. A failed setSecret leaves AWSCURRENT in place.
ROTATION_CODE = """\
import json
import os

import boto3


def handler(event, context):
    arn, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    secrets = boto3.client("secretsmanager")
    stages = secrets.describe_secret(SecretId=arn)["VersionIdsToStages"]
    if token not in stages or ("AWSPENDING" not in stages[token] and "AWSCURRENT" not in stages[token]):
        raise ValueError("version %s of the secret is not set for rotation" % token)
    if "AWSCURRENT" in stages[token]:
        return
    if step == "createSecret":
        try:
            secrets.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")
        except secrets.exceptions.ResourceNotFoundException:
            value = json.loads(secrets.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"])
            value["password"] = secrets.get_random_password(
                PasswordLength=32, ExcludeCharacters=os.environ["EXCLUDE_CHARACTERS"]
            )["RandomPassword"]
            secrets.put_secret_value(
                SecretId=arn, ClientRequestToken=token, SecretString=json.dumps(value), VersionStages=["AWSPENDING"]
            )
    elif step == "setSecret":
        pending = json.loads(
            secrets.get_secret_value(SecretId=arn, VersionId=token, VersionStage="AWSPENDING")["SecretString"]
        )
        # The password excludes quotes and backslashes (EXCLUDE_CHARACTERS): a plain literal.
        sql = os.environ["ALTER_PASSWORD"] % (pending["username"], pending["password"])
        boto3.client("rds-data").execute_statement(
            resourceArn=os.environ["CLUSTER_ARN"], secretArn=arn, database=os.environ["DATABASE"], sql=sql
        )
    elif step == "finishSecret":
        current = next(v for v, s in stages.items() if "AWSCURRENT" in s)
        secrets.update_secret_version_stage(
            SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current
        )
    elif step != "testSecret":
        raise ValueError("unknown rotation step %s" % step)
"""

# Characters a generated administrator password never contains: RDS refuses /, @, " and spaces in a
# master password (CreateDBCluster, MasterUserPassword); quotes and backslashes keep it a plain SQL literal.
EXCLUDE_CHARACTERS = "\"@/\\' `"
# The same period RDS rotates its managed passwords with ("Password management with Amazon Aurora and
# AWS Secrets Manager": "rotates the secret every seven days by default").
MASTER_ROTATION_DAYS = 7
ALTER_PASSWORD = {
    "aurora-postgresql": "ALTER USER \"%s\" WITH PASSWORD '%s'",
    "aurora-mysql": "ALTER USER '%s'@'%%' IDENTIFIED BY '%s'",
}


# Where a user's name goes in the statements the users resource carries (no statement has braces).
USER = "{user}"


def user_statements(env: Environment, service: str) -> list[str]:
    """The SQL that creates ``service``'s user for IAM database authentication and lets it work in
    the environment's database; each statement may run again (an update) with the same result.

    - PostgreSQL: a login role granted ``rds_iam`` ("Creating a database account using IAM
      authentication", Amazon Aurora User Guide), CONNECT on the database, and a schema of its own
      named after it, first on its default ``search_path`` (``"$user", public``), where its tables go;
    - MySQL: a user identified by ``AWSAuthenticationPlugin AS 'RDS'`` (same page), TLS required,
      with every privilege on the environment's database and none beyond it.
    """
    return [sql.replace(USER, database_user(service)) for sql in statement_templates(env)]


def statement_templates(env: Environment) -> list[str]:
    """``user_statements`` with ``USER`` where the user's name goes: what the users resource carries
    once for every user (the function puts each name in)."""
    user, database = USER, env.database.name
    if env.database.engine == "aurora-postgresql":
        return [
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{user}') "
            f'THEN CREATE ROLE "{user}" LOGIN; END IF; END $$',
            f'GRANT rds_iam TO "{user}"',
            f'GRANT CONNECT ON DATABASE "{database}" TO "{user}"',
            f'CREATE SCHEMA IF NOT EXISTS "{user}"',
            f'GRANT USAGE, CREATE ON SCHEMA "{user}" TO "{user}"',
        ]
    return [
        f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS' REQUIRE SSL",
        f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'%'",
    ]


def service_users(
    t: Template, ctx: LayerContext, cluster: rds.DBCluster, secret_arn: Any, secret_resource: Any, *, writer: str
) -> None:
    """One custom resource for the services with ``database_access``: their users, created by the
    function through the RDS Data API once the writer is up (a service added later: an update, which
    runs every statement again for every user, each statement safe to run again; a service removed
    keeps its user, which owns its tables). Only in a primary environment: a DR cluster is a
    global database's secondary, which receives the users with the data and has no writer for the
    Data API until it is promoted ("Limitations for the Amazon RDS Data API")."""
    env = ctx.env
    services = sorted(name for name, service in env.services.items() if service.database_access)
    if env.dr is not None or not services:
        return
    # "Enabling RDS Data API": EnableHttpEndpoint on a Serverless v2 or provisioned cluster
    # (data_api.py: the versions, classes and regions that take it; the settings refuse the others).
    cluster.EnableHttpEndpoint = True
    cluster_arn = GetAtt(cluster, "DBClusterArn")
    function, _ = constructs.inline_function(
        t,
        env,
        "DatabaseUsersFunction",
        code=USERS_CODE,
        description=f"Creates the services' database users of {ctx.stack_name} through the RDS Data API",
        role_description=f"Runs SQL as the administrator of {ctx.stack_name}'s cluster through the RDS Data API",
        policy_name="create-database-users",
        statements=_data_api_statements(ctx, cluster_arn, secret_resource),
        log_group_title="DatabaseUsersFunctionLogGroup",
        log_retention_days=env.database.log_retention_days,
        logs_key_arn=ctx.import_value(Keys.LOGS_KEY_ARN),
        timeout=USERS_TIMEOUT_SECONDS,
        skips=_function_skips("the RDS Data API (HTTPS) and CloudFormation's response URL")[:2],
    )
    t.add_resource(
        cloudformation.CustomResource(
            "DatabaseUsers",
            DependsOn=[writer],
            ServiceToken=GetAtt(function, "Arn"),
            ServiceTimeout=USERS_TIMEOUT_SECONDS,
            Users=[database_user(service) for service in services],
            Placeholder=USER,
            Statements=statement_templates(env),
            ClusterArn=cluster_arn,
            SecretArn=secret_arn,
            Database=env.database.name,
        )
    )


def master_rotation(t: Template, ctx: LayerContext, cluster: rds.DBCluster, *, writer: str) -> None:
    """A rotation schedule for a generated administrator secret (``password: generated``; RDS
    rotates an RDS-managed one itself), every ``MASTER_ROTATION_DAYS``, by a function that changes
    the password through the RDS Data API. Only where the secret is generated: a DR environment's
    copy is a replica of its primary's, which rotates there and replicates."""
    env = ctx.env
    secret = t.resources.get("DatabaseSecret")
    if not rotates_master(env) or not isinstance(secret, secretsmanager.Secret):
        return
    cluster.EnableHttpEndpoint = True
    cluster_arn = GetAtt(cluster, "DBClusterArn")
    statements = _data_api_statements(ctx, cluster_arn, Ref(secret))
    statements.append(
        iam.allow(
            "RotateTheAdministratorSecret",
            [
                secrets_actions.DescribeSecret,
                secrets_actions.PutSecretValue,
                secrets_actions.UpdateSecretVersionStage,
            ],
            [Ref(secret)],
        )
    )
    # secretsmanager:GetRandomPassword acts on no resource (Service Authorization Reference): "*" only.
    statements.append(iam.allow("GenerateAPassword", [secrets_actions.GetRandomPassword], ["*"]))
    statements.append(
        iam.allow(
            "EncryptThePendingVersion",
            [kms_actions.GenerateDataKey],
            [ctx.import_value(Keys.DATA_KEY_ARN)],
            conditions=[StringEquals("kms:ViaService", Sub("secretsmanager.${AWS::Region}.amazonaws.com"))],
        )
    )
    if env.standby is not None:
        # Secrets Manager replicates each new version to the DR region with the caller's identity,
        # re-encrypting it with the replica's key ("How Secrets Manager authorizes cross-account
        # replication": decrypt with the primary's key, encrypt with the replica's; the same for a
        # replica in another region, ReplicateSecretToRegions: kms:GenerateDataKey and kms:Encrypt).
        (replica,) = secret.ReplicaRegions
        statements.append(
            iam.allow(
                "EncryptTheReplicasVersion",
                [kms_actions.Encrypt, kms_actions.GenerateDataKey],
                [replica.KmsKeyId],
                conditions=[StringEquals("kms:ViaService", f"secretsmanager.{env.standby.region}.amazonaws.com")],
            )
        )
    function, _ = constructs.inline_function(
        t,
        env,
        "MasterRotationFunction",
        code=ROTATION_CODE,
        description=f"Rotates the administrator password of {ctx.stack_name}'s cluster through the RDS Data API",
        role_description=f"Rotates the administrator secret of {ctx.stack_name}'s cluster, that secret only",
        policy_name="rotate-the-administrator-secret",
        statements=statements,
        log_group_title="MasterRotationFunctionLogGroup",
        log_retention_days=env.database.log_retention_days,
        logs_key_arn=ctx.import_value(Keys.LOGS_KEY_ARN),
        timeout=300,
        variables={
            "CLUSTER_ARN": cluster_arn,
            "DATABASE": env.database.name,
            "ALTER_PASSWORD": ALTER_PASSWORD[env.database.engine],
            "EXCLUDE_CHARACTERS": EXCLUDE_CHARACTERS,
        },
        skips=_function_skips("the RDS Data API and Secrets Manager (HTTPS)"),
    )
    # After the secret holds the cluster's endpoint, and the writer can take Data API calls.
    constructs.rotation(
        t,
        "Master",
        function=function,
        secret=Ref(secret),
        days=MASTER_ROTATION_DAYS,
        depends_on=["DatabaseSecretAttachment", writer],
    )
    ctx.export(t, Data.MASTER_ROTATION_FUNCTION, Ref(function))


def rotates_master(env: Environment) -> bool:
    """Whether the data stack rotates the administrator secret with a function of its own: a
    generated secret in a primary environment (RDS rotates a managed one; a DR copy is a replica)."""
    return env.dr is None and env.database.password == "generated"


def _data_api_statements(ctx: LayerContext, cluster_arn: Any, secret_resource: Any) -> list[Any]:
    """Run SQL through the RDS Data API as the administrator: ExecuteStatement on the cluster, and
    reading the master secret it signs in with ("Authorizing access to RDS Data API", Amazon Aurora
    User Guide: the caller needs rds-data and secretsmanager:GetSecretValue on the secret), which
    is encrypted with the data key."""
    return [
        iam.allow("RunSqlOnThisCluster", [rds_data.ExecuteStatement], [cluster_arn]),
        iam.allow("ReadTheAdministratorSecret", [secrets_actions.GetSecretValue], [secret_resource]),
        iam.allow(
            "DecryptTheAdministratorSecret",
            [kms_actions.Decrypt],
            [ctx.import_value(Keys.DATA_KEY_ARN)],
            conditions=[StringEquals("kms:ViaService", Sub("secretsmanager.${AWS::Region}.amazonaws.com"))],
        ),
    ]


def _function_skips(calls: str) -> tuple[tuple[str, str], ...]:
    return (
        ("CKV_AWS_117", f"No VPC on purpose: it calls {calls} only, public AWS endpoints"),
        (
            "CKV_AWS_116",
            "Only CloudFormation or Secrets Manager invokes it, and a failure shows where they act (the stack "
            "operation, the secret's rotation status) with its reason in the function's log group",
        ),
        ("CKV_AWS_173", "Its variables name the cluster, the database and a SQL template, no secret"),
    )
