"""The one set of labels/tags every resource gets: project, stack, managed-by.

GCP labels and Kubernetes labels accept the same plain keys, AWS takes them as tags, Docker as
container labels, so all targets use `standard_labels` unchanged. Values are sanitised to the
strictest of those rules (GCP: lowercase letters, digits, `_` and `-`, at most 63 characters).
"""

from __future__ import annotations

import re

MANAGED_BY = "pulumi"
_INVALID = re.compile(r"[^a-z0-9_-]")


def label_value(value: str) -> str:
    """A value every cloud accepts as a label: lowercase, `[a-z0-9_-]`, at most 63 characters."""
    cleaned = _INVALID.sub("-", value.lower())[:63]
    return cleaned.strip("-_") or "none"


def standard_labels(project: str, stack: str) -> dict[str, str]:
    """The labels every resource of the stack carries."""
    return {
        "project": label_value(project),
        "stack": label_value(stack),
        "managed-by": MANAGED_BY,
    }


def app_selector(project: str, stack: str) -> dict[str, str]:
    """The selector of the service's pods (keep it stable: a Deployment's selector is immutable)."""
    return {
        "app.kubernetes.io/name": label_value(project),
        "app.kubernetes.io/instance": label_value(stack),
    }
