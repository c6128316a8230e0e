"""The CI deploy identities' permissions (docs/ci.md), derived from what the cloud stacks declare.

Every resource type in the gke and fargate plans (and in the variants that add types: HTTPS, API
keys, a KMS key, private subnets) maps to the IAM permissions creating, updating and deleting it
takes. The test fails when a new type has no entry, and when the documented GCP custom role
(docs/ci/gcp-deployer-permissions.txt) or AWS policy (docs/ci/aws-deployer-policy.json) misses a
permission. The AWS policy is linted with parliament (which knows every action and the resources
each applies to), and what the cloud can scope to the stack's names (`modelship-*`) must be scoped.
"""

from __future__ import annotations

import fnmatch
import json
import re
import warnings
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from typing import Any

import pytest

from tests.infra.harness import REPO_ROOT, StackRun, run_stack

from .conftest import GKE_PROJECT
from .fargate import fargate_run

DOCS = REPO_ROOT / "docs"
GCP_ROLE_FILE = DOCS / "ci" / "gcp-deployer-permissions.txt"
AWS_POLICY_FILE = DOCS / "ci" / "aws-deployer-policy.json"
CI_STACKS = ("gke", "fargate")
KMS_KEY = "projects/modelship-test/locations/us-central1/keyRings/ring/cryptoKeys/models"
# The Kubernetes objects (and the kubeconfig provider) are managed inside the cluster with the
# Google identity: GKE authorizes them by IAM, through this predefined role (docs/ci.md).
KUBERNETES_ROLE = "roles/container.admin"

GCP: dict[str, tuple[str, ...]] = {
    "gcp:projects/service:Service": (
        "serviceusage.services.enable",
        "serviceusage.services.get",
        "serviceusage.operations.get",
    ),
    "gcp:artifactregistry/repository:Repository": tuple(
        f"artifactregistry.repositories.{v}" for v in ("create", "get", "update", "delete")
    ),
    "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": (
        "artifactregistry.repositories.getIamPolicy",
        "artifactregistry.repositories.setIamPolicy",
    ),
    "docker-build:index:Image": (  # the push to Artifact Registry
        "artifactregistry.repositories.uploadArtifacts",
        "artifactregistry.repositories.downloadArtifacts",
        "artifactregistry.tags.create",
        "artifactregistry.tags.update",
    ),
    "gcp:compute/network:Network": (
        *(f"compute.networks.{v}" for v in ("create", "get", "delete", "updatePolicy")),
        "compute.globalOperations.get",
    ),
    "gcp:compute/subnetwork:Subnetwork": (
        *(f"compute.subnetworks.{v}" for v in ("create", "get", "update", "delete")),
        "compute.regionOperations.get",
    ),
    "gcp:compute/globalAddress:GlobalAddress": tuple(
        f"compute.globalAddresses.{v}" for v in ("create", "get", "delete")
    ),
    "gcp:container/cluster:Cluster": (KUBERNETES_ROLE, "iam.serviceAccounts.actAs"),
    "gcp:container/nodePool:NodePool": (KUBERNETES_ROLE, "iam.serviceAccounts.actAs"),
    "gcp:serviceaccount/account:Account": tuple(
        f"iam.serviceAccounts.{v}" for v in ("create", "get", "update", "delete")
    ),
    "gcp:serviceaccount/iAMMember:IAMMember": (
        "iam.serviceAccounts.getIamPolicy",
        "iam.serviceAccounts.setIamPolicy",
    ),
    "gcp:projects/iAMMember:IAMMember": (
        "resourcemanager.projects.getIamPolicy",
        "resourcemanager.projects.setIamPolicy",
    ),
    "gcp:storage/bucket:Bucket": (
        *(f"storage.buckets.{v}" for v in ("create", "get", "update", "delete")),
        "storage.objects.list",  # force_destroy empties the bucket first
        "storage.objects.delete",
        "resourcemanager.projects.get",
    ),
    "gcp:storage/bucketIAMMember:BucketIAMMember": (
        "storage.buckets.getIamPolicy",
        "storage.buckets.setIamPolicy",
    ),
    # On the key only, not the project: docs/ci.md binds roles/cloudkms.admin on that key.
    "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember": ("roles/cloudkms.admin",),
}
# What putting its labels on a resource takes. Most Google APIs take them in the create request;
# where one cannot, the provider creates the resource and then calls setLabels (magic-modules
# mmv1/products/<product>/<Resource>.yaml with `post_create: .../post_create/labels.tmpl`:
# "Labels cannot be set in a create"). pulumi-gcp adds its own `goog-pulumi-provisioned` label,
# so that call happens even for a resource declared without labels. Checked for every type the
# plans declare: Network and Subnetwork take no labels; Network's post_create only deletes the
# default routes when asked to (the stacks do not); the cluster, node pool, bucket and service
# account are handwritten resources whose create calls carry the labels (or none).
GCP_LABELS: dict[str, tuple[str, ...]] = {
    "gcp:artifactregistry/repository:Repository": ("artifactregistry.repositories.create",),
    "gcp:compute/globalAddress:GlobalAddress": ("compute.globalAddresses.setLabels",),
    "gcp:container/cluster:Cluster": (KUBERNETES_ROLE,),
    "gcp:container/nodePool:NodePool": (KUBERNETES_ROLE,),
    "gcp:storage/bucket:Bucket": ("storage.buckets.create",),
}
# The destroy workflow's sweep of GKE's leftovers on the stack's network.
GCP_SWEEP = (
    "compute.firewalls.list",
    "compute.firewalls.delete",
    "compute.networkEndpointGroups.list",
    "compute.networkEndpointGroups.delete",
    "compute.zoneOperations.get",
)

AWS: dict[str, tuple[str, ...]] = {
    "aws:ec2/vpc:Vpc": (
        "ec2:CreateVpc",
        "ec2:DeleteVpc",
        "ec2:ModifyVpcAttribute",
        "ec2:DescribeVpcs",
    ),
    "aws:ec2/subnet:Subnet": (
        "ec2:CreateSubnet",
        "ec2:DeleteSubnet",
        "ec2:ModifySubnetAttribute",
        "ec2:DescribeSubnets",
        "ec2:DescribeAvailabilityZones",
    ),
    "aws:ec2/internetGateway:InternetGateway": (
        "ec2:CreateInternetGateway",
        "ec2:AttachInternetGateway",
        "ec2:DetachInternetGateway",
        "ec2:DeleteInternetGateway",
    ),
    "aws:ec2/routeTable:RouteTable": ("ec2:CreateRouteTable", "ec2:DeleteRouteTable"),
    "aws:ec2/route:Route": ("ec2:CreateRoute", "ec2:DeleteRoute", "ec2:ReplaceRoute"),
    "aws:ec2/routeTableAssociation:RouteTableAssociation": (
        "ec2:AssociateRouteTable",
        "ec2:DisassociateRouteTable",
    ),
    "aws:ec2/eip:Eip": ("ec2:AllocateAddress", "ec2:ReleaseAddress", "ec2:DisassociateAddress"),
    "aws:ec2/natGateway:NatGateway": ("ec2:CreateNatGateway", "ec2:DeleteNatGateway"),
    "aws:ec2/securityGroup:SecurityGroup": (
        "ec2:CreateSecurityGroup",
        "ec2:DeleteSecurityGroup",
        "ec2:RevokeSecurityGroupEgress",  # the default egress rule is revoked
        "ec2:CreateTags",
    ),
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": (
        "ec2:AuthorizeSecurityGroupIngress",
        "ec2:RevokeSecurityGroupIngress",
        "ec2:DescribeSecurityGroupRules",
    ),
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": (
        "ec2:AuthorizeSecurityGroupEgress",
        "ec2:RevokeSecurityGroupEgress",
    ),
    "aws:ecr/repository:Repository": (
        "ecr:CreateRepository",
        "ecr:DeleteRepository",
        "ecr:DescribeRepositories",
        "ecr:PutImageScanningConfiguration",
        "ecr:PutImageTagMutability",
        "ecr:TagResource",
        "ecr:ListTagsForResource",
        "ecr:BatchDeleteImage",
        "ecr:ListImages",
        "ecr:GetAuthorizationToken",
    ),
    "aws:ecr/lifecyclePolicy:LifecyclePolicy": (
        "ecr:PutLifecyclePolicy",
        "ecr:GetLifecyclePolicy",
        "ecr:DeleteLifecyclePolicy",
    ),
    "docker-build:index:Image": (  # the push to ECR
        "ecr:BatchCheckLayerAvailability",
        "ecr:InitiateLayerUpload",
        "ecr:UploadLayerPart",
        "ecr:CompleteLayerUpload",
        "ecr:PutImage",
        "ecr:BatchGetImage",
    ),
    "aws:s3/bucket:Bucket": (
        "s3:CreateBucket",
        "s3:DeleteBucket",
        "s3:ListBucket",
        "s3:ListBucketVersions",
        "s3:GetBucketTagging",
        "s3:PutBucketTagging",
        "s3:DeleteObject",
        "s3:DeleteObjectVersion",
    ),
    "aws:s3/bucketVersioning:BucketVersioning": (
        "s3:PutBucketVersioning",
        "s3:GetBucketVersioning",
    ),
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration": (
        "s3:PutEncryptionConfiguration",
        "s3:GetEncryptionConfiguration",
    ),
    "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock": (
        "s3:PutBucketPublicAccessBlock",
        "s3:GetBucketPublicAccessBlock",
    ),
    "aws:s3/bucketOwnershipControls:BucketOwnershipControls": (
        "s3:PutBucketOwnershipControls",
        "s3:GetBucketOwnershipControls",
    ),
    "aws:s3/bucketPolicy:BucketPolicy": (
        "s3:PutBucketPolicy",
        "s3:GetBucketPolicy",
        "s3:DeleteBucketPolicy",
    ),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": (
        "s3:PutLifecycleConfiguration",
        "s3:GetLifecycleConfiguration",
    ),
    "aws:iam/role:Role": (
        "iam:CreateRole",
        "iam:DeleteRole",
        "iam:GetRole",
        "iam:TagRole",
        "iam:UpdateAssumeRolePolicy",
        "iam:ListRolePolicies",
        "iam:ListAttachedRolePolicies",
        "iam:ListInstanceProfilesForRole",
        "iam:PassRole",
    ),
    "aws:iam/rolePolicy:RolePolicy": (
        "iam:PutRolePolicy",
        "iam:GetRolePolicy",
        "iam:DeleteRolePolicy",
    ),
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": (
        "iam:AttachRolePolicy",
        "iam:DetachRolePolicy",
    ),
    "aws:cloudwatch/logGroup:LogGroup": (
        "logs:CreateLogGroup",
        "logs:DeleteLogGroup",
        "logs:PutRetentionPolicy",
        "logs:DescribeLogGroups",
        "logs:TagResource",
        "logs:ListTagsForResource",
    ),
    "aws:cloudwatch/metricAlarm:MetricAlarm": (
        "cloudwatch:PutMetricAlarm",
        "cloudwatch:DeleteAlarms",
        "cloudwatch:DescribeAlarms",
        "cloudwatch:TagResource",
        "cloudwatch:ListTagsForResource",
    ),
    "aws:ecs/cluster:Cluster": (
        "ecs:CreateCluster",
        "ecs:DeleteCluster",
        "ecs:DescribeClusters",
        "ecs:UpdateCluster",
        "ecs:TagResource",
    ),
    "aws:ecs/clusterCapacityProviders:ClusterCapacityProviders": (
        "ecs:PutClusterCapacityProviders",
    ),
    "aws:ecs/taskDefinition:TaskDefinition": (
        "ecs:RegisterTaskDefinition",
        "ecs:DeregisterTaskDefinition",
        "ecs:DescribeTaskDefinition",
    ),
    "aws:ecs/service:Service": (
        "ecs:CreateService",
        "ecs:UpdateService",
        "ecs:DeleteService",
        "ecs:DescribeServices",
        "iam:CreateServiceLinkedRole",
    ),
    "aws:lb/loadBalancer:LoadBalancer": (
        "elasticloadbalancing:CreateLoadBalancer",
        "elasticloadbalancing:DeleteLoadBalancer",
        "elasticloadbalancing:ModifyLoadBalancerAttributes",
        "elasticloadbalancing:DescribeLoadBalancers",
        "elasticloadbalancing:DescribeLoadBalancerAttributes",
        "elasticloadbalancing:AddTags",
    ),
    "aws:lb/targetGroup:TargetGroup": (
        "elasticloadbalancing:CreateTargetGroup",
        "elasticloadbalancing:DeleteTargetGroup",
        "elasticloadbalancing:ModifyTargetGroup",
        "elasticloadbalancing:ModifyTargetGroupAttributes",
        "elasticloadbalancing:DescribeTargetGroups",
    ),
    "aws:lb/listener:Listener": (
        "elasticloadbalancing:CreateListener",
        "elasticloadbalancing:DeleteListener",
        "elasticloadbalancing:ModifyListener",
        "elasticloadbalancing:DescribeListeners",
    ),
    "aws:appautoscaling/target:Target": (
        "application-autoscaling:RegisterScalableTarget",
        "application-autoscaling:DeregisterScalableTarget",
        "application-autoscaling:DescribeScalableTargets",
        "application-autoscaling:TagResource",
    ),
    "aws:appautoscaling/policy:Policy": (
        "application-autoscaling:PutScalingPolicy",
        "application-autoscaling:DeleteScalingPolicy",
        "application-autoscaling:DescribeScalingPolicies",
        "cloudwatch:PutMetricAlarm",
        "cloudwatch:DeleteAlarms",
        "cloudwatch:DescribeAlarms",
    ),
    "aws:ssm/parameter:Parameter": (
        "ssm:PutParameter",
        "ssm:GetParameter",
        "ssm:GetParameters",
        "ssm:DeleteParameter",
        "ssm:AddTagsToResource",
        "ssm:ListTagsForResource",
        "ssm:DescribeParameters",
    ),
    "aws:secretsmanager/secret:Secret": (
        "secretsmanager:CreateSecret",
        "secretsmanager:DeleteSecret",
        "secretsmanager:DescribeSecret",
        "secretsmanager:TagResource",
        "secretsmanager:GetResourcePolicy",
    ),
    "aws:secretsmanager/secretVersion:SecretVersion": (
        "secretsmanager:PutSecretValue",
        "secretsmanager:GetSecretValue",
    ),
}
# Tags: AWS authorizes tags given in a create request as a tagging action of their own on the new
# resource (EC2's TagSpecifications take ec2:CreateTags, ECS's and ELB's creates take
# ecs:TagResource and elasticloadbalancing:AddTags); S3 takes no tags in CreateBucket and the
# provider calls PutBucketTagging after it.
_EC2_TAGS = ("ec2:CreateTags",)
AWS_TAGS: dict[str, tuple[str, ...]] = {
    **{
        f"aws:ec2/{t}": _EC2_TAGS
        for t in (
            "vpc:Vpc",
            "subnet:Subnet",
            "internetGateway:InternetGateway",
            "routeTable:RouteTable",
            "eip:Eip",
            "natGateway:NatGateway",
            "securityGroup:SecurityGroup",
        )
    },
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": _EC2_TAGS,
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": _EC2_TAGS,
    "aws:ecr/repository:Repository": ("ecr:TagResource",),
    "aws:s3/bucket:Bucket": ("s3:PutBucketTagging",),
    "aws:iam/role:Role": ("iam:TagRole",),
    "aws:cloudwatch/logGroup:LogGroup": ("logs:TagResource",),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("cloudwatch:TagResource",),
    "aws:ecs/cluster:Cluster": ("ecs:TagResource",),
    "aws:ecs/service:Service": ("ecs:TagResource",),
    "aws:ecs/taskDefinition:TaskDefinition": ("ecs:TagResource",),
    "aws:lb/loadBalancer:LoadBalancer": ("elasticloadbalancing:AddTags",),
    "aws:lb/targetGroup:TargetGroup": ("elasticloadbalancing:AddTags",),
    "aws:lb/listener:Listener": ("elasticloadbalancing:AddTags",),
    "aws:appautoscaling/target:Target": ("application-autoscaling:TagResource",),
    "aws:ssm/parameter:Parameter": ("ssm:AddTagsToResource",),
    "aws:secretsmanager/secret:Secret": ("secretsmanager:TagResource",),
}
# The deploy and destroy workflows' own calls (rollback check, stopping training tasks).
AWS_WORKFLOWS = ("ecs:DescribeServices", "ecs:ListTasks", "ecs:StopTask", "ecs:DescribeTasks")
# Types that need no permission of their own: components, providers, the stack.
NO_PERMISSION = re.compile(r"(modelship:|pulumi:)")
# What the cloud can scope to the stack's names; everything else is created before it has a name
# a policy could match (EC2 ids, task definition revisions) or has no resource-level permissions.
SCOPED_SERVICES = ("ecr", "s3", "iam", "logs", "ssm", "secretsmanager", "elasticloadbalancing")
UNSCOPED_ACTIONS = {"ecr:GetAuthorizationToken", "iam:CreateServiceLinkedRole"}
READ_ONLY = re.compile(r"[a-z-]+:(Describe|List)")


LABEL_INPUTS = ("labels", "tags", "resourceLabels")
# Image labels are metadata of the image, not of a cloud resource.
LABELS_OF_NO_RESOURCE = ("docker-build:", "kubernetes:")


def _plan_types(stack: str, *, labelled: bool = False) -> set[str]:
    """Resource types of a committed plan (only those declared with labels/tags: `labelled`)."""
    text = (REPO_ROOT / "tests" / "infra" / "plans" / f"{stack}.txt").read_text()
    types: set[str] = set()
    current = ""
    for line in text.splitlines():
        if line and line[0] not in " #":
            current = line.split(" ", 1)[0]
            if not labelled:
                types.add(current)
        elif labelled and line.strip().split(".", 1)[0].split(" ", 1)[0] in LABEL_INPUTS:
            types.add(current)
    return types


@pytest.fixture(scope="module")
def variant_runs(gke_https: StackRun, gke_standard: StackRun) -> dict[str, list[StackRun]]:
    """Per cloud, the variants that add resource types to the plans."""
    return {
        "gke": [
            gke_https,
            gke_standard,
            run_stack("gke", {**GKE_PROJECT, "modelship:modelStoreKmsKey": KMS_KEY}),
        ],
        "fargate": [fargate_run(v) for v in ("https-ssm-key", "secretsmanager-key", "private")],
    }


@pytest.fixture(scope="module")
def declared(variant_runs: dict[str, list[StackRun]]) -> dict[str, set[str]]:
    """Resource types per cloud: the plans, plus the variants that add types."""
    return {
        cloud: _plan_types(cloud) | {r.type for run in runs for r in run.resources}
        for cloud, runs in variant_runs.items()
    }


@pytest.fixture(scope="module")
def labelled(variant_runs: dict[str, list[StackRun]]) -> dict[str, set[str]]:
    """Resource types per cloud declared with labels or tags, in the plans or the variants."""
    return {
        cloud: {
            t
            for t in _plan_types(cloud, labelled=True)
            | {
                r.type
                for run in runs
                for r in run.resources
                if any(r.inputs.get(k) for k in LABEL_INPUTS)
            }
            if not t.startswith(LABELS_OF_NO_RESOURCE)
        }
        for cloud, runs in variant_runs.items()
    }


def _needs(
    types: set[str],
    table: dict[str, tuple[str, ...]],
    cloud: str,
    labelled: AbstractSet[str] = frozenset(),
    labels: dict[str, tuple[str, ...]] | None = None,
) -> Iterator[str]:
    for type_ in sorted(types):
        if NO_PERMISSION.match(type_) or type_.startswith("kubernetes:"):
            continue
        assert type_ in table, (
            f"{cloud}: no permissions known for {type_}: add them here and to the docs"
        )
        yield from table[type_]
        if type_ in labelled:
            assert labels is not None and type_ in labels, (
                f"{cloud}: {type_} is declared with labels/tags: add what setting them takes"
            )
            yield from labels[type_]


def test_every_labelled_type_says_what_its_labels_take(
    declared: dict[str, set[str]], labelled: dict[str, set[str]]
) -> None:
    """The issue-28 gap: a global address's labels are set after create (setLabels)."""
    assert "gcp:compute/globalAddress:GlobalAddress" in labelled["gke"]
    assert {"aws:lb/targetGroup:TargetGroup", "aws:ecs/taskDefinition:TaskDefinition"} <= labelled[
        "fargate"
    ]
    assert labelled["gke"] <= set(GCP_LABELS) and labelled["fargate"] <= set(AWS_TAGS)
    assert "compute.globalAddresses.setLabels" in _gcp_documented()


def test_every_declared_type_has_its_permissions(declared: dict[str, set[str]]) -> None:
    assert set(declared) == set(CI_STACKS)
    assert list(_needs(declared["gke"], GCP, "gke"))
    assert list(_needs(declared["fargate"], AWS, "fargate"))
    # The variants are in: HTTPS address, KMS grant, node pool, NAT, both API-key stores.
    assert {
        "gcp:compute/globalAddress:GlobalAddress",
        "gcp:kms/cryptoKeyIAMMember:CryptoKeyIAMMember",
    } <= declared["gke"]
    assert {"aws:ec2/natGateway:NatGateway", "aws:secretsmanager/secret:Secret"} <= declared[
        "fargate"
    ]


def _gcp_documented() -> set[str]:
    lines = GCP_ROLE_FILE.read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def test_the_gcp_deploy_identity_has_every_permission_the_gke_stack_needs(
    declared: dict[str, set[str]], labelled: dict[str, set[str]]
) -> None:
    ci = (DOCS / "ci.md").read_text()
    assert "docs/ci/gcp-deployer-permissions.txt" in ci
    role = _gcp_documented()
    needed = set(_needs(declared["gke"], GCP, "gke", labelled["gke"], GCP_LABELS)) | set(GCP_SWEEP)
    roles = {p for p in needed if p.startswith("roles/")}
    missing = sorted(p for p in needed - roles if p not in role)
    assert not missing, f"docs/ci/gcp-deployer-permissions.txt misses {missing}"
    for predefined in roles:
        assert predefined in ci, f"docs/ci.md grants no {predefined}"
    assert "--role=roles/cloudkms.admin" in ci and "gcloud kms keys add-iam-policy-binding" in ci
    assert all(re.fullmatch(r"[a-z]+\.[a-zA-Z]+\.[a-zA-Z]+", p) for p in role), "permission names"


def _aws_policy() -> dict[str, Any]:
    policy: dict[str, Any] = json.loads(AWS_POLICY_FILE.read_text())
    return policy


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _granting(action: str) -> list[dict[str, Any]]:
    return [
        s
        for s in _aws_policy()["Statement"]
        if s["Effect"] == "Allow"
        and any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _as_list(s["Action"]))
    ]


def test_the_aws_deploy_role_has_every_permission_the_fargate_stack_needs(
    declared: dict[str, set[str]], labelled: dict[str, set[str]]
) -> None:
    ci = (DOCS / "ci.md").read_text()
    assert "file://docs/ci/aws-deployer-policy.json" in ci
    needed = set(_needs(declared["fargate"], AWS, "fargate", labelled["fargate"], AWS_TAGS)) | set(
        AWS_WORKFLOWS
    )
    missing = sorted(a for a in needed if not _granting(a))
    assert not missing, f"docs/ci/aws-deployer-policy.json misses {missing}"
    for action in sorted(needed):
        service = action.split(":")[0]
        if service not in SCOPED_SERVICES or action in UNSCOPED_ACTIONS or READ_ONLY.match(action):
            continue
        for statement in _granting(action):
            resources = _as_list(statement["Resource"])
            assert all("modelship" in r for r in resources), (action, statement["Sid"])
    (pass_role,) = _granting("iam:PassRole")
    assert pass_role["Condition"] == {
        "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}
    }


def test_the_aws_policy_lints_clean_with_parliament() -> None:
    """parliament knows every IAM action and the resource formats it applies to: an unknown
    action, a misspelt one or an ARN that matches nothing fails here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import parliament

    text = AWS_POLICY_FILE.read_text()
    # An inline role policy may be 10,240 characters (whitespace not counted).
    assert len("".join(text.split())) <= 10_240
    unscoped = {s["Sid"] for s in _aws_policy()["Statement"] if s["Resource"] == "*"}
    unexpected = []
    for finding in parliament.analyze_policy_string(text).findings:
        if finding.issue == "RESOURCE_STAR":
            continue  # only statements on "*" get it; which those are is checked below
        if finding.issue == "RESOURCE_MISMATCH" and all(
            "/net/" in d["required_format"] for d in finding.detail
        ):
            continue  # the stack's load balancer is an ALB (app/); NLB formats do not apply
        if finding.issue == "RESOURCE_POLICY_PRIVILEGE_ESCALATION" and "modelship-*" in str(
            finding.detail
        ):
            continue  # the stack writes its bucket's (TLS-only) policy: s3:PutBucketPolicy
        unexpected.append((finding.issue, finding.detail))
    assert not unexpected
    assert unscoped == {
        "ReadAnywhere",
        "NetworkCannotBeNamed",
        "EcsCannotBeNamed",
        "Autoscaling",
    }


# --------------------------------------------------------------------------- who may assume what

AWS_PREVIEW_POLICY_FILE = DOCS / "ci" / "aws-preview-policy.json"
SUB = "token.actions.githubusercontent.com:sub"
# GitHub's subject with the repository's numeric ids (the customization in docs/ci.md): a
# repository deleted and re-created under the same name by someone else does not match.
SUBJECT_PREFIX = "repository_owner_id:OWNER_ID:repository_id:REPOSITORY_ID:"
# What each invoke of the fargate program takes; a preview runs them too. getCallerIdentity
# needs no permission (STS answers any caller).
AWS_INVOKES: dict[str, tuple[str, ...]] = {
    "aws:index/getAvailabilityZones:getAvailabilityZones": ("ec2:DescribeAvailabilityZones",),
    "aws:index/getCallerIdentity:getCallerIdentity": (),
    "aws:ecr/getAuthorizationToken:getAuthorizationToken": ("ecr:GetAuthorizationToken",),
}
# A read, by its name; GetAuthorizationToken yields a registry login that can do no more than
# the role's own ECR permissions (none here).
READ_ACTION = re.compile(r"[a-z0-9-]+:(Describe|List|Get)[A-Za-z]*")


def _json(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DOCS / "ci" / name).read_text())
    return document


def _subjects(trust: dict[str, Any]) -> list[str]:
    (statement,) = trust["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert set(statement["Condition"]) == {"StringEquals"}, "no StringLike: no wildcards"
    condition = statement["Condition"]["StringEquals"]
    assert condition["token.actions.githubusercontent.com:aud"] == "sts.amazonaws.com"
    return _as_list(condition[SUB])


def test_only_the_environments_jobs_may_assume_the_aws_deploy_role() -> None:
    """`repo:ORG/REPO:*` let every pull request's preview job assume the full deploy role."""
    assert _subjects(_json("aws-deployer-trust.json")) == [f"{SUBJECT_PREFIX}environment:fargate"]
    assert _subjects(_json("aws-preview-trust.json")) == [f"{SUBJECT_PREFIX}pull_request"]
    ci = (DOCS / "ci.md").read_text()
    for name in ("aws-deployer-trust.json", "aws-preview-trust.json", "aws-preview-policy.json"):
        assert f"docs/ci/{name}" in ci
    assert '"include_claim_keys":["repository_owner_id","repository_id","context"]' in ci
    assert "repo:my-org/modelship:*" not in ci


def test_the_aws_preview_role_reads_what_a_preview_reads_and_nothing_else() -> None:
    runs = [fargate_run(v) for v in ("default", "https-ssm-key", "secretsmanager-key", "private")]
    invokes = {token for run in runs for token in run.invokes if token.startswith("aws:")}
    unknown = invokes - set(AWS_INVOKES)
    assert not unknown, f"no permissions known for the invokes {sorted(unknown)}"
    needed = {a for token in invokes for a in AWS_INVOKES[token]}
    policy: dict[str, Any] = json.loads(AWS_PREVIEW_POLICY_FILE.read_text())
    granted = {
        a for s in policy["Statement"] if s["Effect"] == "Allow" for a in _as_list(s["Action"])
    }
    assert granted == needed
    assert all(READ_ACTION.fullmatch(a) for a in granted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import parliament

    findings = parliament.analyze_policy_string(AWS_PREVIEW_POLICY_FILE.read_text()).findings
    assert [f.issue for f in findings if f.issue != "RESOURCE_STAR"] == []


def test_the_gcp_federation_matches_the_repository_id_and_says_what_the_role_amounts_to() -> None:
    ci = (DOCS / "ci.md").read_text()
    assert "attribute.repository_id=assertion.repository_id" in ci
    assert "--attribute-condition=\"assertion.repository_id == '$REPO_ID'\"" in ci
    assert "attribute.repository_id/$REPO_ID" in ci
    assert "attribute.repository/" not in ci and "assertion.repository ==" not in ci
    # Project-level setIamPolicy (the node role's grant) plus actAs: whoever holds it can grant
    # itself any role; the docs must say so rather than call the role least-privilege.
    role = _gcp_documented()
    assert {"resourcemanager.projects.setIamPolicy", "iam.serviceAccounts.actAs"} <= role
    assert "owner-equivalent" in ci
