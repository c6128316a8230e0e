"""Least-privilege security groups for the load balancer and the tasks.

load balancer: in 80 (and 443 with HTTPS) from the configured CIDRs; out only to the tasks' group
on the container port. tasks: in only from the load balancer's group on the container port; out
only HTTPS (ECR, the image layers on S3, CloudWatch Logs, SSM/Secrets Manager). training: no
ingress at all (the training task serves nothing); out only HTTPS (ECR, the model store on S3,
CloudWatch Logs). DNS to the VPC resolver is not filtered by security groups. Rules are separate
resources (no inline rules that reference each other, which leave `destroy` stuck on
DependencyViolation) and groups revoke their rules before deletion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict

import pulumi
import pulumi_aws as aws

from infra.core.components import child_opts

HTTP_PORT = 80
HTTPS_PORT = 443
ANYWHERE = "0.0.0.0/0"
# Fargate task ENIs can linger for minutes after a service is deleted; the group waits for them.
GROUP_TIMEOUTS = pulumi.CustomTimeouts(create="10m", delete="20m")


class SecurityGroupsArgs(TypedDict):
    vpc_id: pulumi.Input[str]
    container_port: int
    ingress_cidrs: Sequence[str]
    https: bool
    tags: Mapping[str, str]


class SecurityGroups(pulumi.ComponentResource):
    """`load_balancer`, `tasks` and `training` security groups with their rules."""

    load_balancer: aws.ec2.SecurityGroup
    tasks: aws.ec2.SecurityGroup
    training: aws.ec2.SecurityGroup
    rules: list[pulumi.Resource]
    """The load balancer's and the service tasks' rules (the service waits for them)."""
    training_rules: list[pulumi.Resource]

    def __init__(
        self, name: str, args: SecurityGroupsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:fargate:SecurityGroups", name, None, opts)
        tags = dict(args["tags"])
        port = args["container_port"]
        group_opts = child_opts(self, opts, custom_timeouts=GROUP_TIMEOUTS)

        def group(role: str, description: str) -> aws.ec2.SecurityGroup:
            return aws.ec2.SecurityGroup(
                f"{name}-{role}",
                aws.ec2.SecurityGroupArgs(
                    vpc_id=args["vpc_id"],
                    description=description,
                    revoke_rules_on_delete=True,
                    tags={**tags, "Name": f"{name}-{role}"},
                ),
                opts=group_opts,
            )

        self.load_balancer = group("alb", "modelship load balancer: HTTP(S) in, container port out")
        self.tasks = group(
            "tasks", "modelship tasks: container port from the load balancer, HTTPS out"
        )
        self.training = group("training", "modelship training task: no ingress, HTTPS out")
        child = child_opts(self, opts)
        self.rules = []
        listener_ports = [HTTP_PORT, HTTPS_PORT] if args["https"] else [HTTP_PORT]
        for listener_port in listener_ports:
            for index, cidr in enumerate(args["ingress_cidrs"]):
                self.rules.append(
                    aws.vpc.SecurityGroupIngressRule(
                        f"{name}-alb-in-{listener_port}-{index}",
                        aws.vpc.SecurityGroupIngressRuleArgs(
                            security_group_id=self.load_balancer.id,
                            description=f"port {listener_port} from {cidr}",
                            ip_protocol="tcp",
                            from_port=listener_port,
                            to_port=listener_port,
                            cidr_ipv4=cidr,
                            tags=tags,
                        ),
                        opts=child,
                    )
                )
        self.rules.append(
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-alb-out-tasks",
                aws.vpc.SecurityGroupEgressRuleArgs(
                    security_group_id=self.load_balancer.id,
                    description="requests and health checks to the tasks",
                    ip_protocol="tcp",
                    from_port=port,
                    to_port=port,
                    referenced_security_group_id=self.tasks.id,
                    tags=tags,
                ),
                opts=child,
            )
        )
        self.rules.append(
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-tasks-in-alb",
                aws.vpc.SecurityGroupIngressRuleArgs(
                    security_group_id=self.tasks.id,
                    description="container port from the load balancer only",
                    ip_protocol="tcp",
                    from_port=port,
                    to_port=port,
                    referenced_security_group_id=self.load_balancer.id,
                    tags=tags,
                ),
                opts=child,
            )
        )

        def https_out(
            rule_name: str, group: aws.ec2.SecurityGroup, description: str
        ) -> pulumi.Resource:
            return aws.vpc.SecurityGroupEgressRule(
                f"{name}-{rule_name}",
                aws.vpc.SecurityGroupEgressRuleArgs(
                    security_group_id=group.id,
                    description=description,
                    ip_protocol="tcp",
                    from_port=HTTPS_PORT,
                    to_port=HTTPS_PORT,
                    cidr_ipv4=ANYWHERE,
                    tags=tags,
                ),
                opts=child,
            )

        self.rules.append(
            https_out("tasks-out-https", self.tasks, "HTTPS: image pull (ECR, S3), logs, secrets")
        )
        self.training_rules = [
            https_out(
                "training-out-https",
                self.training,
                "HTTPS: image pull (ECR, S3), the model store (S3), logs",
            )
        ]
        self.register_outputs(
            {
                "load_balancer_group": self.load_balancer.id,
                "tasks_group": self.tasks.id,
                "training_group": self.training.id,
            }
        )
