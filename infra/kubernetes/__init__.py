"""The cloud-neutral Kubernetes components (service, training, batch, monitoring) used by the gke
and k8s targets."""
