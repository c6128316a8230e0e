"""The modelship Pulumi program. `__main__.py` is the entry point Pulumi runs (`main: infra/`).

config.py, settings.py   reading and validating the stack's config (generic, then shared)
stack_file.py            the repository root and `Pulumi.<stack>.yaml`, for offline tools
core/                    what every target shares: container contract, image, labels, ids
kubernetes/              the cloud-neutral Kubernetes components (gke and k8s use them)
targets/<name>/          one folder per target: gke, fargate, k8s, local
offline/                 running a stack without a cloud: the runner and the YAML render
"""
