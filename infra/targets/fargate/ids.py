"""The id rules of the AWS APIs the fargate target names resources in (see `infra.core.ids`)."""

from __future__ import annotations

from infra.core.ids import AutoNameLimit, IdRule

# ECR: 2-256 characters, lowercase, components of [a-z0-9] joined by single `.`, `_` or `-`.
REPOSITORY_NAME = IdRule("ECR repository name", "a-z0-9", max_length=256, min_length=2)
# S3: bucket names are 3-63 lowercase letters, digits, `.` and `-`, starting and ending with a
# letter or digit; `bucket_prefix` may be at most 37 characters (the provider adds a 26-character
# unique suffix). No dots: a dotted bucket name breaks the TLS wildcard of virtual-host URLs.
BUCKET_PREFIX = IdRule(
    "S3 bucket name prefix", "a-z0-9", max_length=37, min_length=3, end_with_separator=True
)
# ECS: a task definition family is up to 255 letters, digits, `-` and `_`.
TASK_FAMILY = IdRule("ECS task definition family", "a-z0-9", max_length=255)
# Elastic Load Balancing: load balancer and target group names are at most 32 characters. They are
# auto-named (a name the stack chose could clash with a replacement during `up`), from the logical
# names `<project>-lb-alb` and `<project>-lb-tg` (infra/targets/fargate/loadbalancer.py).
AUTO_NAMED = (
    AutoNameLimit("Application Load Balancer", "-lb-alb", 32),
    AutoNameLimit("target group", "-lb-tg", 32),
)
