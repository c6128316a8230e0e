"""Application Load Balancer in the public subnets, an `ip` target group checking `/readyz`, an
HTTP listener, and with a certificate an HTTPS listener plus HTTP → HTTPS redirect.

`awsvpc` tasks register by IP, so the target group has target type `ip`; it checks the readiness
path, and drains for 30 s instead of the default 300 s (every deploy would wait that long);
`listeners` is what the ECS service must wait for (created before a listener, the service fails:
the target group has no load balancer yet).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypedDict

import pulumi
import pulumi_aws as aws

from infra.core.components import child_opts
from infra.targets.fargate.security import HTTP_PORT, HTTPS_PORT

# The current recommended TLS policy of Elastic Load Balancing: TLS 1.3 and 1.2, no older.
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
ALB_TIMEOUTS = pulumi.CustomTimeouts(create="15m", update="15m", delete="15m")


class LoadBalancerArgs(TypedDict):
    deletion_protection: bool
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    container_port: int
    health_check_path: str
    health_check_timeout_seconds: int
    deregistration_delay_seconds: int
    certificate_arn: str | None
    tags: Mapping[str, str]


class LoadBalancer(pulumi.ComponentResource):
    """The ALB, its target group and listeners; `url` is the DNS name with scheme."""

    load_balancer: aws.lb.LoadBalancer
    target_group: aws.lb.TargetGroup
    listeners: list[aws.lb.Listener]
    url: pulumi.Output[str]
    resource_label: pulumi.Output[str]
    """`app/.../targetgroup/...`: what ALBRequestCountPerTarget scaling needs."""

    def __init__(
        self, name: str, args: LoadBalancerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:fargate:LoadBalancer", name, None, opts)
        tags = dict(args["tags"])
        self.load_balancer = aws.lb.LoadBalancer(
            f"{name}-alb",
            aws.lb.LoadBalancerArgs(
                load_balancer_type="application",
                internal=False,
                subnets=list(args["subnet_ids"]),
                security_groups=[args["security_group_id"]],
                ip_address_type="ipv4",
                drop_invalid_header_fields=True,
                # Off so `pulumi destroy` can delete it; on in a production stack.
                enable_deletion_protection=args["deletion_protection"],
                idle_timeout=60,
                tags=tags,
            ),
            opts=child_opts(self, opts, custom_timeouts=ALB_TIMEOUTS),
        )
        self.target_group = aws.lb.TargetGroup(
            f"{name}-tg",
            aws.lb.TargetGroupArgs(
                vpc_id=args["vpc_id"],
                target_type="ip",
                protocol="HTTP",
                protocol_version="HTTP1",
                port=args["container_port"],
                deregistration_delay=args["deregistration_delay_seconds"],
                health_check=aws.lb.TargetGroupHealthCheckArgs(
                    enabled=True,
                    protocol="HTTP",
                    path=args["health_check_path"],
                    port="traffic-port",
                    matcher="200",
                    interval=10,
                    timeout=args["health_check_timeout_seconds"],
                    healthy_threshold=2,
                    unhealthy_threshold=3,
                ),
                tags=tags,
            ),
            opts=child_opts(self, opts),
        )
        forward = aws.lb.ListenerDefaultActionArgs(
            type="forward", target_group_arn=self.target_group.arn
        )
        certificate = args["certificate_arn"]
        if certificate is None:
            http_action = forward
        else:
            http_action = aws.lb.ListenerDefaultActionArgs(
                type="redirect",
                redirect=aws.lb.ListenerDefaultActionRedirectArgs(
                    protocol="HTTPS", port=str(HTTPS_PORT), status_code="HTTP_301"
                ),
            )
        self.listeners = [
            aws.lb.Listener(
                f"{name}-http",
                aws.lb.ListenerArgs(
                    load_balancer_arn=self.load_balancer.arn,
                    port=HTTP_PORT,
                    protocol="HTTP",
                    default_actions=[http_action],
                    tags=tags,
                ),
                opts=child_opts(self, opts),
            )
        ]
        if certificate is not None:
            self.listeners.append(
                aws.lb.Listener(
                    f"{name}-https",
                    aws.lb.ListenerArgs(
                        load_balancer_arn=self.load_balancer.arn,
                        port=HTTPS_PORT,
                        protocol="HTTPS",
                        ssl_policy=TLS_POLICY,
                        certificate_arn=certificate,
                        default_actions=[forward],
                        tags=tags,
                    ),
                    opts=child_opts(self, opts),
                )
            )
        scheme = "http" if certificate is None else "https"
        self.url = self.load_balancer.dns_name.apply(lambda dns: f"{scheme}://{dns}" if dns else "")
        self.resource_label = pulumi.Output.concat(
            self.load_balancer.arn_suffix, "/", self.target_group.arn_suffix
        )
        self.register_outputs({"url": self.url, "target_group": self.target_group.arn})
