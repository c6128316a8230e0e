"""The training job on Kubernetes: `modelship train` in the training image, as a Job template.

A Job declared by Pulumi would run on every `pulumi up` that changes it, make `up` wait for the
training to finish, and, once its TTL deletes it, show up as drift. So the Job lives as the
template of a CronJob: suspended unless a schedule is configured, started on demand with
`kubectl create job --from=cronjob/<name> <run>`. Each run is an ordinary Job with the
resources, deadline (`activeDeadlineSeconds`), retry limit (`backoffLimit`) and clean-up of
finished runs (`ttlSecondsAfterFinished`) declared here.

The pod has its own ServiceAccount (the training identity; on gke annotated for Workload
Identity) and the same hardening as the service pods (`restricted` Pod Security Standard,
read-only root, only /tmp writable).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from infra.core.components import child_opts
from infra.core.container import RUN_AS_GROUP, RUN_AS_USER, TMP_DIR
from infra.kubernetes.app import TMP_VOLUME, container_security, pod_security

TRAINING_CONTAINER = "train"
# One retry: a second failure is a problem with the data or the code, not a blip.
BACKOFF_LIMIT = 1
# Finished runs (and their pods, with the logs) stay a day for `kubectl logs`, then go.
FINISHED_TTL_SECONDS = 24 * 60 * 60
HISTORY_LIMIT = 3
# Standard cron syntax, five fields (what Kubernetes' CronJob accepts), or an @-macro.
SUSPENDED_SCHEDULE = "@yearly"


class TrainingJobArgs(TypedDict):
    """Inputs of `TrainingJob`."""

    namespace: pulumi.Input[str]
    job_name: str
    """The CronJob's name; runs are named by whoever starts them."""
    image: pulumi.Input[str]
    command: pulumi.Input[list[str]]
    """Arguments of the image's `modelship` entrypoint: `train --data … --output …`."""
    cpu: str
    memory: str
    timeout_seconds: int
    labels: Mapping[str, str]
    schedule: NotRequired[str | None]
    """Cron schedule to retrain on; None: suspended, runs only when started by hand."""
    service_account_annotations: NotRequired[Mapping[str, pulumi.Input[str]]]
    extra_resources: NotRequired[Mapping[str, str]]
    """More quantities beside cpu/memory, requested = limited (gke: ephemeral-storage)."""
    tmp_size_limit: str
    """Of the /tmp emptyDir (the downloaded CSV and the new artifact)."""


class TrainingJob(pulumi.ComponentResource):
    """ServiceAccount + CronJob whose template is the training Job."""

    service_account: k8s.core.v1.ServiceAccount
    cron_job: k8s.batch.v1.CronJob
    run_command: pulumi.Output[str]
    """A shell command line that starts one run now and follows its logs."""

    def __init__(
        self, name: str, args: TrainingJobArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:kubernetes:TrainingJob", name, None, opts)
        child = child_opts(self, opts)
        labels = dict(args["labels"])
        job_name = args["job_name"]
        schedule = args.get("schedule")

        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=job_name,
                namespace=args["namespace"],
                labels=labels,
                annotations=dict(args.get("service_account_annotations", {})) or None,
            ),
            automount_service_account_token=False,
            opts=child,
        )
        resources = {
            "cpu": args["cpu"],
            "memory": args["memory"],
            **args.get("extra_resources", {}),
        }
        pod = job_pod_spec(
            service_account=self.service_account.metadata.name,
            container_name=TRAINING_CONTAINER,
            image=args["image"],
            args=args["command"],
            resources=resources,
            tmp_size_limit=args["tmp_size_limit"],
        )
        self.cron_job = job_template(
            f"{name}-cronjob",
            namespace=args["namespace"],
            name=job_name,
            labels=labels,
            schedule=schedule,
            job=k8s.batch.v1.JobSpecArgs(
                backoff_limit=BACKOFF_LIMIT,
                active_deadline_seconds=args["timeout_seconds"],
                ttl_seconds_after_finished=FINISHED_TTL_SECONDS,
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels), spec=pod
                ),
            ),
            opts=child,
        )
        self.run_command = pulumi.Output.all(
            self.cron_job.metadata.namespace, self.cron_job.metadata.name
        ).apply(lambda parts: run_command(str(parts[0]), str(parts[1])))
        self.register_outputs({"cron_job": self.cron_job.metadata.name})


def job_template(
    resource_name: str,
    *,
    namespace: pulumi.Input[str],
    name: str,
    labels: Mapping[str, str],
    schedule: str | None,
    job: k8s.batch.v1.JobSpecArgs,
    opts: pulumi.ResourceOptions,
) -> k8s.batch.v1.CronJob:
    """A CronJob holding `job` as its template: suspended unless `schedule` is given (runs are
    then started with `kubectl create job --from=cronjob/<name>`), never two runs at once."""
    return k8s.batch.v1.CronJob(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=name, namespace=namespace, labels=dict(labels)),
        spec=k8s.batch.v1.CronJobSpecArgs(
            schedule=schedule or SUSPENDED_SCHEDULE,
            time_zone="Etc/UTC",
            suspend=schedule is None,
            # A run still going when the next is due: skip the new one, never run twice.
            concurrency_policy="Forbid",
            successful_jobs_history_limit=HISTORY_LIMIT,
            failed_jobs_history_limit=HISTORY_LIMIT,
            job_template=k8s.batch.v1.JobTemplateSpecArgs(
                metadata=k8s.meta.v1.ObjectMetaArgs(labels=dict(labels)), spec=job
            ),
        ),
        opts=opts,
    )


def job_pod_spec(
    *,
    service_account: pulumi.Input[str],
    container_name: str,
    image: pulumi.Input[str],
    args: pulumi.Input[list[str]],
    resources: Mapping[str, str],
    tmp_size_limit: str,
    env: Mapping[str, pulumi.Input[str]] | None = None,
) -> k8s.core.v1.PodSpecArgs:
    """The pod of a run-to-completion Job (training, batch): one container with the service
    pods' hardening, requests = limits, and /tmp the only writable path."""
    container = k8s.core.v1.ContainerArgs(
        name=container_name,
        image=image,
        image_pull_policy="IfNotPresent",
        args=args,
        env=[k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in env.items()] if env else None,
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests=dict(resources), limits=dict(resources)
        ),
        security_context=container_security(RUN_AS_USER, RUN_AS_GROUP),
        volume_mounts=[k8s.core.v1.VolumeMountArgs(name=TMP_VOLUME, mount_path=TMP_DIR)],
    )
    return k8s.core.v1.PodSpecArgs(
        service_account_name=service_account,
        automount_service_account_token=False,
        restart_policy="Never",
        security_context=pod_security(RUN_AS_USER, RUN_AS_GROUP),
        containers=[container],
        volumes=[
            k8s.core.v1.VolumeArgs(
                name=TMP_VOLUME,
                empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit=tmp_size_limit),
            )
        ],
    )


def run_command(namespace: str, cron_job: str) -> str:
    """Start one training run now from the CronJob's template and follow its log to the end.

    The log ends with `published: <version URI>`, the value for `modelship:modelUri`.
    """
    return (
        f'RUN={cron_job}-"$(date +%Y%m%d%H%M%S)" '
        f'&& kubectl -n {namespace} create job --from=cronjob/{cron_job} "$RUN" '
        f'&& kubectl -n {namespace} logs -f "job/$RUN" --pod-running-timeout=10m'
    )
