"""Helpers shared by the program's ComponentResources."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi


def child_opts(
    parent: pulumi.Resource, opts: pulumi.ResourceOptions | None, **extra: Any
) -> pulumi.ResourceOptions:
    """Options for a component's child: `parent` plus the component's own `depends_on`.

    Pulumi does not pass a component's `depends_on` on to the children it declares, so a component
    given `depends_on=[apis]` would otherwise create its VPC before the Compute API is enabled.
    `extra` adds options (custom_timeouts, more depends_on, ...) for this child.
    """
    inherited: list[pulumi.Resource] = []
    depends_on = opts.depends_on if opts is not None else None
    if isinstance(depends_on, pulumi.Resource):
        inherited.append(depends_on)
    elif isinstance(depends_on, Sequence):
        inherited.extend(d for d in depends_on if isinstance(d, pulumi.Resource))
    own = pulumi.ResourceOptions(**extra)
    base = pulumi.ResourceOptions(parent=parent, depends_on=inherited)
    return pulumi.ResourceOptions.merge(base, own)
