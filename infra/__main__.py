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

Every target builds the same image (`infra.core.image`), runs the same container description
(`infra.core.container`), labels everything the same way (`infra.core.labels`) and exports
`url`, `image`, and its capacity plan and price at the planned load (`capacity`, `monthly_cost`,
`cost_per_million_predictions`: `infra.core.capacity`, `infra.core.cost`). Config is read and
validated once (`infra.config`, `infra.settings`) before any resource is declared.

`infra` is a package of the workspace's environment (the root `pyproject.toml`), so imports need
no path set-up; but Pulumi's host runs this directory as a script with the directory itself first
on `sys.path`, where its folders (`kubernetes`, `config`, ...) would shadow top-level packages of
those names. It is taken off before anything else is imported.
"""

import sys
from pathlib import Path

_PROGRAM_DIR = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _PROGRAM_DIR]

from typing import Any  # noqa: E402

import pulumi  # noqa: E402

from infra.config import ConfigReader  # noqa: E402
from infra.core.cost import Ledger  # noqa: E402
from infra.settings import read_shared  # noqa: E402
from infra.targets import Target, TargetOutputs, fargate, gke, k8s, local  # noqa: E402

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
    section = target.read_section(reader, settings) if target is not None else None
    plan = None
    if target is not None:
        settings, plan = target.plan(reader, settings, section)
    reader.check_unknown_keys()
    reader.raise_if_problems()
    assert target is not None and plan is not None  # a missing target is a problem raised above
    ledger = Ledger().install()
    outputs = target.deploy(settings, section)
    return target.priced(outputs, settings, section, plan, ledger)


main().export()
