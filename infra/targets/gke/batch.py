"""The gke batch identity: what the batch transform's pods may do in the model store.

The serving identity's grant (read `models/`) plus reading the input under `data/` and writing
results under `outputs/`, as a Google service account of its own bound to the batch Job's
Kubernetes service account by Workload Identity (a second grant on the serving account would
let the service write too):
  roles/storage.objectViewer  objects under `data/` and `models/` (the input, the model version);
  roles/storage.objectUser    objects under `outputs/` (create, and replace: a re-run shard
                              writes its part again; the merge reads the shard manifests);
  roles/storage.objectViewer  listings whose prefix is under `data/` or `outputs/` (an input
                              prefix of many files; the merge lists `outputs/<run>/_shards/`).
Listing is checked on the bucket, not on an object, so `resource.name` conditions never match
it; GCS passes the listing's prefix as `storage.googleapis.com/objectListPrefix` instead.
"""

from __future__ import annotations

from typing import TypedDict

import pulumi
import pulumi_gcp as gcp

from infra.core.batch import OUTPUTS_PREFIX
from infra.core.components import child_opts
from infra.core.model_store import DATA_PREFIX, MODELS_PREFIX
from infra.targets.gke.model_store import (
    OBJECT_VIEWER,
    WORKLOAD_IDENTITY_USER,
    prefix_condition,
    workload_identity_member,
)

OBJECT_USER = "roles/storage.objectUser"
LIST_PREFIX_ATTRIBUTE = "storage.googleapis.com/objectListPrefix"


def list_prefix_condition(*prefixes: str) -> str:
    """A CEL expression true for object listings whose prefix starts with one of `prefixes`."""
    return " || ".join(
        f'api.getAttribute("{LIST_PREFIX_ATTRIBUTE}", "").startsWith("{prefix}")'
        for prefix in prefixes
    )


class BatchIdentityArgs(TypedDict):
    project: str
    bucket: pulumi.Input[str]
    account_id: str
    namespace: str
    kubernetes_account: str
    depends_on: list[pulumi.Resource]
    """The cluster: its workload pool must exist before a Workload Identity binding."""


class BatchIdentity(pulumi.ComponentResource):
    account: gcp.serviceaccount.Account
    grants: list[gcp.storage.BucketIAMMember]
    ready: list[pulumi.Resource]
    """The grants and the Workload Identity binding a batch pod relies on at start."""

    def __init__(
        self, name: str, args: BatchIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:gke:BatchIdentity", name, None, opts)
        child = child_opts(self, opts)
        bucket = args["bucket"]
        self.account = gcp.serviceaccount.Account(
            f"{name}-account",
            project=args["project"],
            account_id=args["account_id"],
            display_name="modelship batch: reads data and models, writes outputs",
            opts=child,
        )
        member = self.account.email.apply(lambda email: f"serviceAccount:{email}")

        def grant(
            grant_name: str, role: str, title: str, what: str, expression: pulumi.Input[str]
        ) -> gcp.storage.BucketIAMMember:
            return gcp.storage.BucketIAMMember(
                f"{name}-{grant_name}",
                bucket=bucket,
                role=role,
                member=member,
                condition=gcp.storage.BucketIAMMemberConditionArgs(
                    title=title, description=what, expression=expression
                ),
                opts=child,
            )

        self.grants = [
            grant(
                "read",
                OBJECT_VIEWER,
                "read data and models",
                f"only objects under {DATA_PREFIX}, {MODELS_PREFIX}",
                prefix_condition(bucket, DATA_PREFIX, MODELS_PREFIX),
            ),
            grant(
                "write",
                OBJECT_USER,
                "write outputs",
                f"only objects under {OUTPUTS_PREFIX}",
                prefix_condition(bucket, OUTPUTS_PREFIX),
            ),
            grant(
                "list",
                OBJECT_VIEWER,
                "list data and outputs",
                f"only listings under {DATA_PREFIX}, {OUTPUTS_PREFIX}",
                list_prefix_condition(DATA_PREFIX, OUTPUTS_PREFIX),
            ),
        ]
        binding = gcp.serviceaccount.IAMMember(
            f"{name}-workload-identity",
            service_account_id=self.account.name,
            role=WORKLOAD_IDENTITY_USER,
            member=workload_identity_member(
                args["project"], args["namespace"], args["kubernetes_account"]
            ),
            opts=child_opts(self, opts, depends_on=args["depends_on"]),
        )
        self.ready = [binding, *self.grants]
        self.register_outputs({"account": self.account.email})
