"""Every name a layer exports, in one place: imported by the layer that exports it and by the
layers that read it, so a renamed export breaks at build time in Python, not at deploy time."""

from infra_templates.layer import ExportSpec


class Keys:
    LOGS_KEY_ARN = ExportSpec("keys", "LogsKeyArn", "KMS key that encrypts every log group of the environment")


class Network:
    VPC_ID = ExportSpec("network", "VpcId", "VPC id")
    VPC_CIDR = ExportSpec("network", "VpcCidr", "VPC IPv4 CIDR block")
    PUBLIC_SUBNET_IDS = ExportSpec("network", "PublicSubnetIds", "Public subnet ids, comma-separated, one per zone")
    PRIVATE_SUBNET_IDS = ExportSpec(
        "network", "PrivateSubnetIds", "Private application subnet ids (egress through NAT), comma-separated"
    )
    DATA_SUBNET_IDS = ExportSpec(
        "network", "DataSubnetIds", "Isolated data subnet ids (no route to the internet), comma-separated"
    )
