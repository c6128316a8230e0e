"""The gke stack's model store: a GCS bucket and the two Google identities that may use it.

Bucket: uniform bucket-level access (IAM only, no object ACLs), public access prevention
enforced, object versioning, Google-managed encryption at rest (always on in GCS) or the
customer-managed Cloud KMS key given in `modelship:modelStoreKmsKey`, and lifecycle rules:
training data under `data/` is deleted `modelship:trainingDataDays` after upload, request
captures under `captures/` `modelship:captureDays` after they were written, batch results under
`outputs/` `modelship:batchOutputDays` after they were written, versions
replaced or deleted are kept `NONCURRENT_VERSION_DAYS` for recovery and then removed, and
abandoned multipart uploads are cleaned up after a day. Soft delete is off: versioning already
keeps deleted objects recoverable, and soft-deleted objects would outlive `pulumi destroy`.

Identities, bound to Kubernetes service accounts by Workload Identity (no keys anywhere):
  serving   roles/storage.objectViewer on objects under `models/` only, and with
            `modelship:captureRate` above 0 roles/storage.objectCreator under `captures/`;
  training  roles/storage.objectViewer under `data/` and `models/`, and
            roles/storage.objectCreator under `models/` (create only: without delete
            permission GCS refuses to overwrite, so a published version cannot change).
The prefixes are IAM Conditions on the bucket's policy (which need uniform bucket-level access).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

import pulumi
import pulumi_gcp as gcp

from infra.core.batch import OUTPUTS_PREFIX
from infra.core.components import child_opts
from infra.core.model_store import (
    CAPTURES_PREFIX,
    DATA_PREFIX,
    MODELS_PREFIX,
    NONCURRENT_VERSION_DAYS,
)

OBJECT_VIEWER = "roles/storage.objectViewer"
OBJECT_CREATOR = "roles/storage.objectCreator"
WORKLOAD_IDENTITY_USER = "roles/iam.workloadIdentityUser"
KMS_ENCRYPTER_DECRYPTER = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
ABANDONED_UPLOAD_DAYS = 1


class ModelStoreArgs(TypedDict):
    """Inputs of `ModelStore`."""

    project: str
    region: str
    labels: Mapping[str, str]
    keep: bool
    """Keep the bucket (and its models) on `pulumi destroy`; else empty and delete it."""
    training_data_days: int
    capture_days: int
    """Request captures under `captures/` are deleted this many days after they were written."""
    capture: bool
    """The serving identity may create objects under `captures/` (`modelship:captureRate` > 0)."""
    output_days: int
    """Batch results under `outputs/` are deleted this many days after they were written."""
    kms_key: str | None
    serving_account_id: str
    training_account_id: str
    namespace: str
    serving_kubernetes_account: str
    training_kubernetes_account: str
    cluster: pulumi.Resource
    """The cluster whose creation makes the project's workload pool (`PROJECT.svc.id.goog`):
    in a fresh project the pool does not exist before it, and a binding to a member of the pool
    fails with `Identity Pool does not exist`."""


def prefix_condition(bucket: pulumi.Input[str], *prefixes: str) -> pulumi.Output[str]:
    """A CEL expression true for objects of `bucket` whose names start with one of `prefixes`."""
    return pulumi.Output.from_input(bucket).apply(
        lambda name: " || ".join(
            f'resource.name.startsWith("projects/_/buckets/{name}/objects/{prefix}")'
            for prefix in prefixes
        )
    )


def expire_prefix(prefix: str, days: int) -> gcp.storage.BucketLifecycleRuleArgs:
    """Live objects under `prefix` are deleted `days` after they were written."""
    return gcp.storage.BucketLifecycleRuleArgs(
        action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
        condition=gcp.storage.BucketLifecycleRuleConditionArgs(
            age=days, matches_prefixes=[prefix], with_state="LIVE"
        ),
    )


def workload_identity_member(project: str, namespace: str, kubernetes_account: str) -> str:
    """The IAM principal of a Kubernetes service account in the cluster's workload pool."""
    return f"serviceAccount:{project}.svc.id.goog[{namespace}/{kubernetes_account}]"


class ModelStore(pulumi.ComponentResource):
    """The bucket, its lifecycle, and the serving and training identities with their grants."""

    bucket: gcp.storage.Bucket
    uri: pulumi.Output[str]
    serving_account: gcp.serviceaccount.Account
    training_account: gcp.serviceaccount.Account
    grants: list[gcp.storage.BucketIAMMember]
    serving_ready: list[pulumi.Resource]
    """What a serving pod needs before it starts: its Workload Identity binding and bucket grant
    (a pod started earlier crash-loops on a 403 reading modelship:modelUri)."""
    training_ready: list[pulumi.Resource]
    """The same for a training pod: its binding and its read and publish grants."""

    def __init__(
        self, name: str, args: ModelStoreArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:gke:ModelStore", name, None, opts)
        child = child_opts(self, opts)
        project = args["project"]
        keep = args["keep"]

        encryption = None
        bucket_depends: list[pulumi.Resource] = []
        if args["kms_key"] is not None:
            bucket_depends.append(self._grant_key(name, project, args["kms_key"], opts))
            encryption = gcp.storage.BucketEncryptionArgs(default_kms_key_name=args["kms_key"])

        self.bucket = gcp.storage.Bucket(
            f"{name}-bucket",
            project=project,
            location=args["region"].upper(),
            storage_class="STANDARD",
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            versioning=gcp.storage.BucketVersioningArgs(enabled=True),
            encryption=encryption,
            soft_delete_policy=gcp.storage.BucketSoftDeletePolicyArgs(retention_duration_seconds=0),
            lifecycle_rules=[
                expire_prefix(CAPTURES_PREFIX, args["capture_days"]),
                gcp.storage.BucketLifecycleRuleArgs(
                    action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                    condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                        age=args["training_data_days"],
                        matches_prefixes=[DATA_PREFIX],
                        with_state="LIVE",
                    ),
                ),
                expire_prefix(OUTPUTS_PREFIX, args["output_days"]),
                gcp.storage.BucketLifecycleRuleArgs(
                    action=gcp.storage.BucketLifecycleRuleActionArgs(type="Delete"),
                    condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                        days_since_noncurrent_time=NONCURRENT_VERSION_DAYS,
                        with_state="ARCHIVED",
                    ),
                ),
                gcp.storage.BucketLifecycleRuleArgs(
                    action=gcp.storage.BucketLifecycleRuleActionArgs(
                        type="AbortIncompleteMultipartUpload"
                    ),
                    condition=gcp.storage.BucketLifecycleRuleConditionArgs(
                        age=ABANDONED_UPLOAD_DAYS
                    ),
                ),
            ],
            force_destroy=not keep,
            labels=dict(args["labels"]),
            opts=child_opts(
                self, opts, retain_on_delete=keep or None, depends_on=bucket_depends or None
            ),
        )
        bucket_name = self.bucket.name
        self.uri = pulumi.Output.concat("gs://", bucket_name)

        self.serving_account = gcp.serviceaccount.Account(
            f"{name}-serving",
            project=project,
            account_id=args["serving_account_id"],
            display_name="modelship service: reads model versions",
            opts=child,
        )
        self.training_account = gcp.serviceaccount.Account(
            f"{name}-training",
            project=project,
            account_id=args["training_account_id"],
            display_name="modelship training: reads data, publishes model versions",
            opts=child,
        )

        def grant(
            grant_name: str,
            account: gcp.serviceaccount.Account,
            role: str,
            title: str,
            *prefixes: str,
        ) -> gcp.storage.BucketIAMMember:
            return gcp.storage.BucketIAMMember(
                f"{name}-{grant_name}",
                bucket=bucket_name,
                role=role,
                member=account.email.apply(lambda email: f"serviceAccount:{email}"),
                condition=gcp.storage.BucketIAMMemberConditionArgs(
                    title=title,
                    description=f"only objects under {', '.join(prefixes)}",
                    expression=prefix_condition(bucket_name, *prefixes),
                ),
                opts=child,
            )

        serving_read = grant(
            "serving-read", self.serving_account, OBJECT_VIEWER, "read models", MODELS_PREFIX
        )
        training_grants = [
            grant(
                "training-read",
                self.training_account,
                OBJECT_VIEWER,
                "read data and models",
                DATA_PREFIX,
                MODELS_PREFIX,
            ),
            grant(
                "training-publish",
                self.training_account,
                OBJECT_CREATOR,
                "publish models",
                MODELS_PREFIX,
            ),
        ]
        serving_grants = [serving_read]
        if args["capture"]:
            serving_grants.append(
                grant(
                    "serving-capture",
                    self.serving_account,
                    OBJECT_CREATOR,
                    "write captures",
                    CAPTURES_PREFIX,
                )
            )
        self.grants = [*serving_grants, *training_grants]

        namespace = args["namespace"]
        after_cluster = child_opts(self, opts, depends_on=[args["cluster"]])

        def workload_identity(
            role_name: str, account: gcp.serviceaccount.Account, kubernetes_account: str
        ) -> gcp.serviceaccount.IAMMember:
            return gcp.serviceaccount.IAMMember(
                f"{name}-{role_name}-workload-identity",
                service_account_id=account.name,
                role=WORKLOAD_IDENTITY_USER,
                member=workload_identity_member(project, namespace, kubernetes_account),
                opts=after_cluster,
            )

        self.serving_ready = [
            workload_identity("serving", self.serving_account, args["serving_kubernetes_account"]),
            *serving_grants,
        ]
        self.training_ready = [
            workload_identity(
                "training", self.training_account, args["training_kubernetes_account"]
            ),
            *training_grants,
        ]
        self.register_outputs(
            {
                "uri": self.uri,
                "serving_account": self.serving_account.email,
                "training_account": self.training_account.email,
            }
        )

    def _grant_key(
        self, name: str, project: str, key: str, opts: pulumi.ResourceOptions | None
    ) -> gcp.kms.CryptoKeyIAMMember:
        """GCS encrypts with the key as the project's storage service agent, which needs the key
        role. The key is the user's: deleting an IAM member removes that member from the key's
        binding whoever added it, so every other bucket on the key (and this one, when kept)
        could no longer be read. The grant outlives `destroy`."""
        agent = gcp.storage.get_project_service_account_output(project=project)
        return gcp.kms.CryptoKeyIAMMember(
            f"{name}-kms",
            crypto_key_id=key,
            role=KMS_ENCRYPTER_DECRYPTER,
            member=agent.email_address.apply(lambda email: f"serviceAccount:{email}"),
            opts=child_opts(self, opts, retain_on_delete=True),
        )


def workload_identity_annotation(
    account: gcp.serviceaccount.Account,
) -> dict[str, pulumi.Output[str]]:
    """The Kubernetes ServiceAccount annotation that makes its pods act as `account`."""
    return {"iam.gke.io/gcp-service-account": account.email}
