"""Data layer: an Aurora cluster (PostgreSQL or MySQL) in the isolated data subnets, reachable only
from the services allowed to use it; encrypted, TLS-only, IAM authentication on, each service's own
database user created here (data_access.py), its administrator password in Secrets Manager and
rotated (by RDS, or by this stack's rotation schedule), backed up, monitored, and kept on deletion."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from awacs import logs as logs_actions
from awacs.aws import Action, Allow, Principal, Statement
from troposphere import GetAtt, Ref, Select, Split, Sub, Template, backup, rds, secretsmanager
from troposphere.iam import Role
from troposphere.logs import LogGroup
from troposphere.validators import double

from infra_templates import constructs, iam
from infra_templates.config import Environment, ServerlessCapacity
from infra_templates.layer import LayerContext
from templates import data_access
from templates.contracts import Data, Keys, Network, Security

# A secret's complete ARN: its name ends in a hyphen and the 6 characters Secrets Manager appends.
SECRET_ARN_PATTERN = r"^arn:[a-z-]+:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$"

CA_CERTIFICATE = "rds-ca-rsa2048-g1"  # AWS's current default; rotates without a client change until 2061


def cluster_identifier(env: Environment) -> str:
    """Named, because people, runbooks and the log groups RDS writes to need to find it."""
    return f"{env.project}-{env.name}"


def build(env: Environment) -> Template:
    ctx = LayerContext(env, "data")
    database = env.database
    t = ctx.new_template(f"Aurora {database.engine} {database.engine_version} in the isolated data subnets")
    data_key = ctx.import_value(Keys.DATA_KEY_ARN)

    subnets = t.add_resource(
        rds.DBSubnetGroup(
            "SubnetGroup",
            DBSubnetGroupDescription=f"{ctx.stack_name}: the isolated data subnets, no route to the internet",
            SubnetIds=ctx.import_list(Network.DATA_SUBNET_IDS),
        )
    )
    parameters = t.add_resource(
        rds.DBClusterParameterGroup(
            "ClusterParameterGroup",
            Description=f"{ctx.stack_name}: TLS required"
            + (", audit log on" if database.engine == "aurora-mysql" else ""),
            Family=database.parameter_family,
            Parameters=_tls_only(env),
        )
    )
    log_groups = [t.add_resource(_exported_log_group(ctx, log_type)) for log_type in database.log_types]
    capacity = database.capacity
    cluster = rds.DBCluster(
        "Cluster",
        DependsOn=[group.title for group in log_groups],  # RDS would create them without retention
        DBClusterIdentifier=cluster_identifier(env),
        Engine=database.engine,
        EngineVersion=database.engine_version,
        Port=database.port,
        StorageEncrypted=True,
        KmsKeyId=data_key,
        EnableIAMDatabaseAuthentication=True,
        DBSubnetGroupName=Ref(subnets),
        DBClusterParameterGroupName=Ref(parameters),
        VpcSecurityGroupIds=[ctx.import_value(Security.DATABASE_SECURITY_GROUP)],
        BackupRetentionPeriod=database.backup_retention_days,
        PreferredBackupWindow=database.preferred_backup_window,
        PreferredMaintenanceWindow=database.preferred_maintenance_window,
        DeletionProtection=database.deletion_protection,
        CopyTagsToSnapshot=True,
        EnableCloudwatchLogsExports=database.log_types,
        AutoMinorVersionUpgrade=True,
    )
    if isinstance(capacity, ServerlessCapacity):
        scaling = ServerlessV2Scaling(MinCapacity=capacity.min_acu, MaxCapacity=capacity.max_acu)
        if capacity.seconds_until_auto_pause is not None:
            scaling.SecondsUntilAutoPause = capacity.seconds_until_auto_pause
        cluster.ServerlessV2ScalingConfiguration = scaling
    secret_arn, secret_resource = _credentials(t, ctx, cluster)
    # The cluster holds the data: a deleted or replaced stack leaves a final snapshot behind.
    cluster.DeletionPolicy = "Snapshot"
    cluster.UpdateReplacePolicy = "Snapshot"
    t.add_resource(cluster)

    monitoring = t.add_resource(_monitoring_role(ctx))
    instance_class = "db.serverless" if isinstance(capacity, ServerlessCapacity) else capacity.instance_class
    for index in range(instance_count(env)):
        zone = ctx.zones[index % len(ctx.zones)]  # writer in the first zone, readers in the next ones
        instance = t.add_resource(
            rds.DBInstance(
                "WriterInstance" if index == 0 else f"ReaderInstance{index}",
                DBClusterIdentifier=Ref(cluster),
                DBInstanceClass=instance_class,
                Engine=database.engine,
                AvailabilityZone=zone.name,
                PromotionTier=0 if index < 2 else 1,  # the first reader takes over first
                PubliclyAccessible=False,
                AutoMinorVersionUpgrade=True,
                CACertificateIdentifier=CA_CERTIFICATE,
                EnablePerformanceInsights=True,
                PerformanceInsightsKMSKeyId=data_key,
                PerformanceInsightsRetentionPeriod=database.performance_insights_retention_days,
                MonitoringInterval=database.monitoring_interval,
                MonitoringRoleArn=GetAtt(monitoring, "Arn"),
            )
        )
        # An instance holds no data of its own (the cluster volume does): deleting it loses nothing.
        instance.DeletionPolicy = "Delete"
        instance.UpdateReplacePolicy = "Delete"

    writer = "WriterInstance"  # a primary environment's cluster always has one
    data_access.service_users(t, ctx, cluster, secret_arn, secret_resource, writer=writer)
    data_access.master_rotation(t, ctx, cluster, writer=writer)

    ctx.export(t, Data.CLUSTER_IDENTIFIER, Ref(cluster))
    ctx.export(t, Data.CLUSTER_RESOURCE_ID, GetAtt(cluster, "DBClusterResourceId"))
    ctx.export(t, Data.ENDPOINT, GetAtt(cluster, "Endpoint.Address"))
    ctx.export(t, Data.READER_ENDPOINT, GetAtt(cluster, "ReadEndpoint.Address"))
    ctx.export(t, Data.PORT, GetAtt(cluster, "Endpoint.Port"))
    ctx.export(t, Data.SECRET_ARN, secret_arn)
    ctx.export(t, Data.SECRET_RESOURCE, secret_resource)
    ctx.export(t, Data.DATABASE_NAME, database.name)
    if env.dr is None:
        # A DR cluster is the primary's copy, and its vault receives the primary's backup copies.
        _backup_plan(t, ctx, cluster)
    if env.standby is not None:
        # This cluster becomes the primary of a global database; the DR environment's cluster joins it.
        t.add_resource(
            rds.GlobalCluster(
                "GlobalCluster",
                GlobalClusterIdentifier=global_cluster_identifier(env.project, env.name),
                SourceDBClusterIdentifier=GetAtt(cluster, "DBClusterArn"),
                DeletionProtection=database.deletion_protection,
            )
        )
    return t


class ServerlessV2Scaling(rds.ServerlessV2ScalingConfiguration):
    """troposphere 4.11's validators refuse a MinCapacity below 0.5 and a MaxCapacity above 128, but
    Aurora Serverless v2 takes 0 (auto-pause) on engine versions that support it ("Scaling to Zero
    ACUs with automatic pause and resume for Aurora Serverless v2"; RDS API,
    ServerlessV2ScalingConfiguration.MinCapacity) and up to 256 ACUs ("Requirements and limitations
    for Aurora Serverless v2": "from a minimum of 0 ... to a maximum of 256 ACUs"; RDS API,
    ServerlessV2ScalingConfiguration.MaxCapacity: "256 for recent Aurora versions, or 128 for older
    versions"). The one place the project works around troposphere: the settings (settings/database.py,
    ServerlessCapacity) decide the range, and the gate's rule E9007 checks the engine version."""

    props: ClassVar[dict[str, Any]] = {
        **rds.ServerlessV2ScalingConfiguration.props,
        "MinCapacity": (double, False),
        "MaxCapacity": (double, False),
    }


def instance_count(env: Environment) -> int:
    """Writer plus readers; a pilot-light DR cluster has none (headless) until failover."""
    if env.dr is not None and env.dr.posture == "pilot-light":
        return 0
    return 1 + env.database.capacity.readers


def global_cluster_identifier(project: str, primary: str) -> str:
    return f"{project}-{primary}-global"


def secret_name(project: str, primary: str) -> str:
    """The database secret's name: the same in the primary's region and, replicated, in the DR one."""
    return f"{project}/{primary}/database"


def _credentials(t: Template, ctx: LayerContext, cluster: rds.DBCluster) -> tuple[Any, Any]:
    """Set how the cluster gets its administrator; return (the secret's ARN for ``Secrets``, the
    ARN pattern an IAM policy names it by).

    - a DR cluster joins the global database and has no credentials of its own (AWS requires it);
      it uses the primary's secret, replicated to this region under the same name;
    - ``password: managed``: RDS generates and keeps it in Secrets Manager;
    - ``password: generated``: a secret this stack generates, replicated to the DR region when one
      stands by (RDS-managed passwords cannot be in a global database).
    """
    env, database = ctx.env, ctx.env.database
    data_key = ctx.import_value(Keys.DATA_KEY_ARN)
    if env.dr is not None:
        cluster.GlobalClusterIdentifier = global_cluster_identifier(env.project, env.dr.protects)
        # The replica keeps the primary secret's name and 6-character suffix: its complete ARN is
        # the primary's (an output of the primary's data stack, deployed before this one) in this
        # region. ECS takes a secret's full ARN (ECS API reference, Secret.valueFrom).
        primary = Ref(ctx.parameter_from(t, Data.SECRET_ARN, SECRET_ARN_PATTERN, environment=env.dr.protects))
        replica = Sub(
            "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:${Name}",
            Name=Select(6, Split(":", primary)),
        )
        pattern = Sub(
            "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:%s-??????"
            % secret_name(env.project, env.dr.protects)
        )
        return replica, pattern
    cluster.DatabaseName = database.name
    if database.password == "managed":
        cluster.MasterUsername = database.master_username
        cluster.ManageMasterUserPassword = True
        cluster.MasterUserSecret = rds.MasterUserSecret(KmsKeyId=data_key)
        arn = GetAtt(cluster, "MasterUserSecret.SecretArn")
        return arn, arn
    secret = secretsmanager.Secret(
        "DatabaseSecret",
        Name=secret_name(env.project, env.name),
        Description=f"Administrator of {cluster_identifier(env)}: generated here, never written anywhere",
        KmsKeyId=data_key,
        GenerateSecretString=secretsmanager.GenerateSecretString(
            SecretStringTemplate=json.dumps({"username": database.master_username}),
            GenerateStringKey="password",
            PasswordLength=32,
            ExcludeCharacters="\"@/\\' `",
        ),
    )
    if env.standby is not None:
        # The replica is encrypted with the DR environment's own data key, read from its keys
        # stack (which needs nothing of this environment, so it deploys first).
        replica_key = ctx.parameter_from(t, Keys.DATA_KEY_ARN, environment=env.standby.environment)
        secret.ReplicaRegions = [secretsmanager.ReplicaRegion(Region=env.standby.region, KmsKeyId=Ref(replica_key))]
    constructs.protect(secret, env)
    t.add_resource(secret)
    cluster.MasterUsername = Sub("{{resolve:secretsmanager:${%s}:SecretString:username}}" % secret.title)
    cluster.MasterUserPassword = Sub("{{resolve:secretsmanager:${%s}:SecretString:password}}" % secret.title)
    t.add_resource(
        secretsmanager.SecretTargetAttachment(
            "DatabaseSecretAttachment",
            SecretId=Ref(secret),
            TargetId=Ref(cluster),
            TargetType="AWS::RDS::DBCluster",
        )
    )
    return Ref(secret), Ref(secret)


def _tls_only(env: Environment) -> dict[str, str]:
    if env.database.engine == "aurora-postgresql":
        return {"rds.force_ssl": "1"}
    # Aurora MySQL: refuse plain connections, and write the audit log that is exported.
    return {"require_secure_transport": "ON", "server_audit_logging": "1", "server_audit_events": "CONNECT,QUERY_DDL"}


def _exported_log_group(ctx: LayerContext, log_type: str) -> LogGroup:
    """The log group RDS exports ``log_type`` to, created first so it has a retention and a key."""
    group = constructs.log_group(
        f"{log_type.capitalize()}LogGroup",
        ctx.env,
        ctx.env.database.log_retention_days,
        ctx.import_value(Keys.LOGS_KEY_ARN),
    )
    group.LogGroupName = f"/aws/rds/cluster/{cluster_identifier(ctx.env)}/{log_type}"
    return group


# Two hours after the cluster's own backup window (database.preferred_backup_window, 02:00-03:00 UTC
# by default) and after the default maintenance window (sun 03:30-04:30 UTC).
BACKUP_SCHEDULE = "cron(0 5 * * ? *)"
BACKUP_START_WINDOW_MINUTES = 60
BACKUP_COMPLETION_WINDOW_MINUTES = 360

# AWS's managed policy for AWS Backup's role, as the AWS Backup Developer Guide documents it
# ("Default service role for AWS Backup"): AWS keeps it current for every resource type Backup
# supports, and Backup can act only on the resources a plan's selection names; our own copy would
# fall behind AWS's changes. IAM's managed policies cannot be scoped further: the selection is the scope.
BACKUP_MANAGED_POLICY = "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup"


def _backup_plan(t: Template, ctx: LayerContext, cluster: rds.DBCluster) -> None:
    """A daily AWS Backup of the cluster into the environment's vault (keys layer), kept
    ``database.backup_plan_retention_days``; copied to the DR environment's vault in its region when
    one protects this environment (its keys stack deploys before this stack)."""
    env = ctx.env
    days = env.database.backup_plan_retention_days
    rule = backup.BackupRuleResourceType(
        RuleName="daily",
        TargetBackupVault=f"{env.project}-{env.name}",
        ScheduleExpression=BACKUP_SCHEDULE,
        StartWindowMinutes=BACKUP_START_WINDOW_MINUTES,
        CompletionWindowMinutes=BACKUP_COMPLETION_WINDOW_MINUTES,
        Lifecycle=backup.LifecycleResourceType(DeleteAfterDays=days),
    )
    if env.standby is not None:
        dr_vault = ctx.parameter_from(t, Keys.BACKUP_VAULT_ARN, environment=env.standby.environment)
        rule.CopyActions = [
            backup.CopyActionResourceType(
                DestinationBackupVaultArn=Ref(dr_vault),
                Lifecycle=backup.LifecycleResourceType(DeleteAfterDays=days),
            )
        ]
    plan = t.add_resource(
        backup.BackupPlan(
            "BackupPlan",
            BackupPlan=backup.BackupPlanResourceType(BackupPlanName=ctx.stack_name, BackupPlanRule=[rule]),
        )
    )
    role = t.add_resource(
        Role(
            "BackupRole",
            Description=f"AWS Backup backs up {cluster_identifier(env)} for {ctx.stack_name}'s plan",
            # The trust policy of AWS Backup's default service role, as its Developer Guide shows it:
            # the service principal only (Backup is not documented to send aws:SourceAccount).
            AssumeRolePolicyDocument=iam.document(
                Statement(
                    Sid="TrustAwsBackup",
                    Effect=Allow,
                    Principal=Principal("Service", "backup.amazonaws.com"),
                    Action=[Action("sts", "AssumeRole")],
                )
            ),
            ManagedPolicyArns=[Sub(BACKUP_MANAGED_POLICY)],
        )
    )
    t.add_resource(
        backup.BackupSelection(
            "BackupSelection",
            BackupPlanId=Ref(plan),
            BackupSelection=backup.BackupSelectionResourceType(
                SelectionName="database",
                IamRoleArn=GetAtt(role, "Arn"),
                Resources=[GetAtt(cluster, "DBClusterArn")],
            ),
        )
    )


def _monitoring_role(ctx: LayerContext) -> Role:
    """Enhanced monitoring: RDS writes OS metrics to the RDSOSMetrics log group, and nothing else.

    The same permissions as AWS's AmazonRDSEnhancedMonitoringRole, written out with awacs.
    """
    metrics = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:RDSOSMetrics"
    return iam.service_role(
        "MonitoringRole",
        service="monitoring.rds.amazonaws.com",
        description=f"RDS enhanced monitoring of {ctx.stack_name} writes OS metrics",
        policy_name="enhanced-monitoring",
        statements=[
            iam.allow(
                "CreateTheMetricsLogGroup",
                [logs_actions.CreateLogGroup, logs_actions.PutRetentionPolicy],
                [Sub(metrics + ":*")],
            ),
            iam.allow(
                "WriteTheMetricsLogStreams",
                [
                    logs_actions.CreateLogStream,
                    logs_actions.DescribeLogStreams,
                    logs_actions.GetLogEvents,
                    logs_actions.PutLogEvents,
                ],
                [Sub(metrics + ":log-stream:*")],
            ),
        ],
    )
