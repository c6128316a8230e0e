"""The stack's S3 bucket for training data (`data/`) and model versions (`models/`).

Versioned (an overwritten or deleted object stays recoverable for NONCURRENT_VERSION_DAYS),
encrypted at rest, no public access of any kind, ACLs disabled (the bucket owner owns every
object), and a bucket policy that refuses plain HTTP. Lifecycle: training data under `data/`
expires after `modelship:trainingDataDays`, request captures under `captures/` after
`modelship:captureDays`, batch results under `outputs/` after `modelship:batchOutputDays`,
noncurrent versions after NONCURRENT_VERSION_DAYS,
and abandoned multipart uploads after a day, so nothing accumulates unseen.

Encryption is SSE-S3 (AES256), not SSE-KMS: a KMS key would need `kms:Decrypt` /
`kms:GenerateDataKey` in both task roles and costs a monthly fee, and a customer-managed key
cannot be deleted at once (7 to 30 days pending deletion), so `pulumi destroy` would leave it
behind. The data is a training CSV and model files; S3's own keys are enough here.

Destroy: with `keep` false (every stack but production) the bucket is force-destroyed: emptied of
every object version, then deleted. With `keep` true no force-destroy, and the bucket and its
settings are `retain_on_delete`: `pulumi destroy` removes them from the state and leaves them in
the account, models included. Retaining the settings too matters: deleting a BucketVersioning
resource suspends versioning and deleting the public access block reopens the bucket.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

import pulumi
import pulumi_aws as aws

from infra.core.batch import OUTPUTS_PREFIX
from infra.core.components import child_opts
from infra.core.model_store import CAPTURES_PREFIX, DATA_PREFIX, NONCURRENT_VERSION_DAYS
from infra.targets.fargate.iam import POLICY_VERSION

ABORT_MULTIPART_DAYS = 1
SSE_ALGORITHM = "AES256"


def tls_only_policy(bucket_arn: str) -> dict[str, Any]:
    """Deny every request to the bucket and its objects that does not use TLS."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def expire_prefix(
    rule_id: str, prefix: str, days: int
) -> aws.s3.BucketLifecycleConfigurationRuleArgs:
    """Objects under `prefix` are deleted `days` after they were written."""
    return aws.s3.BucketLifecycleConfigurationRuleArgs(
        id=rule_id,
        status="Enabled",
        filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=prefix),
        expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(days=days),
    )


def lifecycle_rules(
    training_data_days: int, capture_days: int, output_days: int
) -> list[aws.s3.BucketLifecycleConfigurationRuleArgs]:
    """Old training data, captures, batch results, object versions and abandoned uploads go
    away by themselves."""
    return [
        expire_prefix("expire-captures", CAPTURES_PREFIX, capture_days),
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="expire-training-data",
            status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=DATA_PREFIX),
            expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                days=training_data_days
            ),
        ),
        expire_prefix("expire-batch-outputs", OUTPUTS_PREFIX, output_days),
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            # Model versions never become noncurrent (written once); overwritten or deleted
            # data does, and versioning would otherwise keep it forever.
            id="expire-noncurrent-versions",
            status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(),
            noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                noncurrent_days=NONCURRENT_VERSION_DAYS
            ),
            expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                expired_object_delete_marker=True
            ),
        ),
        aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="abort-incomplete-uploads",
            status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(),
            abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                days_after_initiation=ABORT_MULTIPART_DAYS
            ),
        ),
    ]


class S3ModelStoreArgs(TypedDict):
    bucket_prefix: str
    keep: bool
    """Keep the bucket and its models on `pulumi destroy` (production); else empty and delete it."""
    training_data_days: int
    capture_days: int
    """Request captures under `captures/` are deleted this many days after they were written."""
    output_days: int
    """Batch results under `outputs/` expire this many days after they were written."""
    tags: Mapping[str, str]


class S3ModelStore(pulumi.ComponentResource):
    """The bucket and its settings; `name`, `arn` and `uri` (`s3://NAME`) for the rest."""

    bucket: aws.s3.Bucket
    name: pulumi.Output[str]
    arn: pulumi.Output[str]
    uri: pulumi.Output[str]
    ready: list[pulumi.Resource]
    """The settings a first training run relies on (encryption, public access block, policy)."""

    def __init__(
        self, name: str, args: S3ModelStoreArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:fargate:S3ModelStore", name, None, opts)
        keep = args["keep"]
        tags = dict(args["tags"])

        def child(**extra: Any) -> pulumi.ResourceOptions:
            return child_opts(self, opts, retain_on_delete=keep, **extra)

        self.bucket = aws.s3.Bucket(
            f"{name}-bucket",
            aws.s3.BucketArgs(
                bucket_prefix=args["bucket_prefix"],
                force_destroy=not keep,
                tags=tags,
            ),
            opts=child(),
        )
        bucket = self.bucket.id
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            aws.s3.BucketVersioningInitArgs(
                bucket=bucket,
                versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                    status="Enabled"
                ),
            ),
            opts=child(),
        )
        encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            aws.s3.BucketServerSideEncryptionConfigurationInitArgs(
                bucket=bucket,
                rules=[
                    aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                        apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                            sse_algorithm=SSE_ALGORITHM
                        )
                    )
                ],
            ),
            opts=child(),
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            aws.s3.BucketPublicAccessBlockArgs(
                bucket=bucket,
                block_public_acls=True,
                block_public_policy=True,
                ignore_public_acls=True,
                restrict_public_buckets=True,
            ),
            opts=child(),
        )
        ownership = aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            aws.s3.BucketOwnershipControlsArgs(
                bucket=bucket,
                rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            ),
            opts=child(),
        )
        # S3 answers concurrent configuration calls on one bucket with `OperationAborted`:
        # the policy waits for the public access block, the lifecycle for versioning.
        policy = aws.s3.BucketPolicy(
            f"{name}-policy",
            aws.s3.BucketPolicyArgs(
                bucket=bucket,
                policy=pulumi.Output.json_dumps(self.bucket.arn.apply(tls_only_policy)),
            ),
            opts=child(depends_on=[public_access, ownership]),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            aws.s3.BucketLifecycleConfigurationArgs(
                bucket=bucket,
                rules=lifecycle_rules(
                    args["training_data_days"], args["capture_days"], args["output_days"]
                ),
            ),
            opts=child(depends_on=[versioning]),
        )
        self.name = self.bucket.bucket
        self.arn = self.bucket.arn
        self.uri = pulumi.Output.concat("s3://", self.bucket.bucket)
        self.ready = [versioning, encryption, public_access, policy]
        self.register_outputs({"name": self.name, "uri": self.uri})
