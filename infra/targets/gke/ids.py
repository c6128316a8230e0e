"""The id rules of the Google APIs the gke target names resources in (see `infra.core.ids`)."""

from __future__ import annotations

from infra.core.ids import AutoNameLimit, IdRule

# IAM: `accountId` must be 6-30 characters, [a-z][a-z0-9-]*[a-z0-9].
SERVICE_ACCOUNT_ID = IdRule(
    "GCP service account id", "a-z0-9", max_length=30, min_length=6, letter_first=True
)
# Artifact Registry: lowercase letters, digits and hyphens, starting with a letter and ending
# with a letter or digit, at most 63 characters.
REPOSITORY_ID = IdRule(
    "Artifact Registry repository id", "a-z0-9", max_length=63, letter_first=True
)
# GKE: a cluster name is at most 40 characters; the cluster is auto-named from
# `<project>-gke-cluster` (infra/targets/gke/cluster.py).
AUTO_NAMED = (AutoNameLimit("GKE cluster", "-gke-cluster", 40),)
