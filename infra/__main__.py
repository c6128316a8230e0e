"""modelship: deploy the model service with Pulumi, one stack per target.

`modelship:target` picks the target from `TARGETS`:
  gke      Google Kubernetes Engine (Autopilot by default): APIs, Artifact Registry, VPC, cluster,
           and the service as Deployment + LoadBalancer Service (or HTTPS Ingress) + HPA + PDB.
  local    Docker on this machine: the image built and loaded (no push), a bridge network and one
           container on localhost with restart policy, health check and the cloud's limits.
  k8s      any existing cluster in the user's kubeconfig (kubeadm, k3s, another team's): the same
           Kubernetes objects, exposed by LoadBalancer, NodePort or an Ingress; or, with
           `modelship:renderDir`, rendered to YAML + kustomization.yaml for GitOps instead.
  fargate  AWS ECS on Fargate: ECR, a dedicated VPC, security groups, Application Load Balancer
           (HTTPS with a certificate), IAM roles, cluster, task definition, service + autoscaling.

Every target builds the same image (`infra.image`), runs the same container description
(`infra.container`), labels everything the same way (`infra.labels`) and exports `url`, `image`.
Config is read and validated once (`infra.settings`) before any resource is declared.
"""

import sys
from pathlib import Path
from typing import Any

# Pulumi's Python host runs this file with `infra/` (not the repository root) on sys.path.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import pulumi  # noqa: E402

from infra import fargate, gke, k8s, local  # noqa: E402
from infra.settings import ConfigReader, read_shared  # noqa: E402
from infra.targets import Target, TargetOutputs  # noqa: E402

TARGETS: dict[str, Target[Any]] = {
    "gke": gke.TARGET,
    "local": local.TARGET,
    "k8s": k8s.TARGET,
    "fargate": fargate.TARGET,
}


def main() -> TargetOutputs:
    """Read and validate config, then declare the chosen target's resources."""
    reader = ConfigReader(pulumi.get_stack())
    settings = read_shared(reader, pulumi.get_project(), TARGETS)
    target = TARGETS.get(settings.target)
    section = target.read(reader, settings) if target is not None else None
    reader.check_unknown_keys()
    reader.raise_if_problems()
    assert target is not None  # a missing target is a problem raised above
    return target.deploy(settings, section)


main().export()
