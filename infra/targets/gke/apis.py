"""The Google APIs the gke target needs, enabled by the program: on a fresh project the first
call otherwise fails with "Kubernetes Engine API has not been used in project ..."."""

from __future__ import annotations

from typing import TypedDict

import pulumi
import pulumi_gcp as gcp

from infra.core.components import child_opts

# compute: VPC and load balancers; container: GKE; artifactregistry: images; iam: the node
# service account; cloudresourcemanager: its project role binding.
REQUIRED_APIS = (
    "artifactregistry.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "compute.googleapis.com",
    "container.googleapis.com",
    "iam.googleapis.com",
    # Workload Identity: the GKE metadata server mints the Google accounts' tokens through it.
    "iamcredentials.googleapis.com",
    "storage.googleapis.com",
)


class ProjectApisArgs(TypedDict):
    project: pulumi.Input[str]


class ProjectApis(pulumi.ComponentResource):
    """Enables the APIs; `pulumi destroy` leaves them on (other workloads may use them)."""

    services: list[gcp.projects.Service]

    def __init__(
        self, name: str, args: ProjectApisArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:gke:ProjectApis", name, None, opts)
        self.services = [
            gcp.projects.Service(
                f"{name}-{api.split('.')[0]}",
                project=args["project"],
                service=api,
                disable_on_destroy=False,
                disable_dependent_services=False,
                opts=child_opts(self, opts),
            )
            for api in REQUIRED_APIS
        ]
        self.register_outputs({"services": [s.service for s in self.services]})
