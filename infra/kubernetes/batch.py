"""The batch transform on Kubernetes: an Indexed Job of N shards, declared as a template.

Why a template and not a Job: a Job's pod template is immutable and every run scores another
input into another output, so a Job declared by Pulumi would have to be replaced per run (and
`up` would wait for it). As with the training job, the Job lives as the template of a CronJob
that is always suspended; `batch_command` (an output) creates one run from it with
`kubectl create job --from=cronjob/<name> --dry-run=client -o yaml`, sets the run's input and
output in the pod's environment with `kubectl set env --local` (offline, on that YAML), and
creates the Job. The container's arguments refer to those variables (`$(MODELSHIP_BATCH_INPUT)`,
which Kubernetes expands), and to `$(JOB_COMPLETION_INDEX)`, which the Job controller sets in
each pod of an Indexed Job: pod I runs `modelship predict MODEL INPUT -o OUTPUT --shard I/N`.

Retries: `backoffLimitPerIndex` retries a failed shard on its own (its part is replaced, never
duplicated); exit code 2 (bad input: the CLI names the row and column) fails that shard at once,
through the pod failure policy, since a retry would fail the same way. `activeDeadlineSeconds`
bounds the whole run, finished runs are deleted after a day (`ttlSecondsAfterFinished`).
The pod has the service pods' hardening (`restricted` Pod Security Standard, read-only root,
only /tmp writable, where a fetched model version is cached).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import NotRequired, TypedDict

import pulumi
import pulumi_kubernetes as k8s

from infra.core.batch import (
    INPUT_VARIABLE,
    OUTPUT_VARIABLE,
    OUTPUTS_PREFIX,
    RUN_VARIABLE,
    BatchSettings,
    predict_command,
    require_input,
)
from infra.core.components import child_opts
from infra.kubernetes.training import FINISHED_TTL_SECONDS, job_pod_spec, job_template

BATCH_CONTAINER = "batch"
INPUT_ENV = "MODELSHIP_BATCH_INPUT"
OUTPUT_ENV = "MODELSHIP_BATCH_OUTPUT"
# What a run created from the template without `batch_command` would try to read: the CLI's
# "does not exist" error then says where the real value comes from.
UNSET = "(unset: run the stack's batch_command output)"
# A failed shard is retried twice on its own before the run counts it failed.
RETRIES_PER_SHARD = 2
BAD_INPUT_EXIT_CODE = 2
# A worker keeps only the fetched model version under /tmp; parts stream to the bucket.
TMP_SIZE_LIMIT = "256Mi"


class BatchJobArgs(TypedDict):
    """Inputs of `BatchJob`."""

    namespace: pulumi.Input[str]
    job_name: str
    image: pulumi.Input[str]
    model: pulumi.Input[str]
    """What `predict` loads: a model version URI, or the artifact baked into the image."""
    batch: BatchSettings
    labels: Mapping[str, str]
    store_root: NotRequired[pulumi.Input[str] | None]
    """`gs://BUCKET`: the default output is `<root>/outputs/<run>/`; None (k8s): OUTPUT needed."""
    service_account_name: NotRequired[pulumi.Input[str]]
    """Run as this existing ServiceAccount (k8s: the service's); else one is created."""
    service_account_annotations: NotRequired[Mapping[str, pulumi.Input[str]]]
    extra_resources: NotRequired[Mapping[str, str]]


class BatchJob(pulumi.ComponentResource):
    """(ServiceAccount +) suspended CronJob whose template is the Indexed batch Job."""

    cron_job: k8s.batch.v1.CronJob
    service_account_name: pulumi.Output[str]
    run_command: pulumi.Output[str]
    """Shell lines that start one run over $INPUT into $OUTPUT (default outputs/<run>/)."""

    def __init__(
        self, name: str, args: BatchJobArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:kubernetes:BatchJob", name, None, opts)
        child = child_opts(self, opts)
        labels = dict(args["labels"])
        batch = args["batch"]
        existing = args.get("service_account_name")
        if existing is not None:
            self.service_account_name = pulumi.Output.from_input(existing)
        else:
            account = k8s.core.v1.ServiceAccount(
                f"{name}-sa",
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=args["job_name"],
                    namespace=args["namespace"],
                    labels=labels,
                    annotations=dict(args.get("service_account_annotations", {})) or None,
                ),
                automount_service_account_token=False,
                opts=child,
            )
            self.service_account_name = account.metadata.name
        command = pulumi.Output.from_input(args["model"]).apply(
            lambda model: predict_command(
                model,
                f"$({INPUT_ENV})",
                f"$({OUTPUT_ENV})",
                f"$(JOB_COMPLETION_INDEX)/{batch.shards}",
            )
        )
        pod = job_pod_spec(
            service_account=self.service_account_name,
            container_name=BATCH_CONTAINER,
            image=args["image"],
            args=command,
            env={INPUT_ENV: UNSET, OUTPUT_ENV: UNSET},
            resources={
                "cpu": batch.cpu,
                "memory": batch.memory,
                **args.get("extra_resources", {}),
            },
            tmp_size_limit=TMP_SIZE_LIMIT,
        )
        self.cron_job = job_template(
            f"{name}-cronjob",
            namespace=args["namespace"],
            name=args["job_name"],
            labels=labels,
            schedule=None,
            job=k8s.batch.v1.JobSpecArgs(
                completion_mode="Indexed",
                completions=batch.shards,
                parallelism=batch.parallelism,
                backoff_limit_per_index=RETRIES_PER_SHARD,
                pod_failure_policy=k8s.batch.v1.PodFailurePolicyArgs(
                    rules=[
                        k8s.batch.v1.PodFailurePolicyRuleArgs(
                            action="FailIndex",
                            on_exit_codes=k8s.batch.v1.PodFailurePolicyOnExitCodesRequirementArgs(
                                container_name=BATCH_CONTAINER,
                                operator="In",
                                values=[BAD_INPUT_EXIT_CODE],
                            ),
                        )
                    ]
                ),
                active_deadline_seconds=batch.timeout_seconds,
                ttl_seconds_after_finished=FINISHED_TTL_SECONDS,
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(labels=labels), spec=pod
                ),
            ),
            opts=child,
        )
        self.run_command = pulumi.Output.all(
            self.cron_job.metadata.namespace,
            self.cron_job.metadata.name,
            args.get("store_root"),
        ).apply(lambda parts: run_command(str(parts[0]), str(parts[1]), parts[2]))
        self.register_outputs({"cron_job": self.cron_job.metadata.name})


def run_command(namespace: str, cron_job: str, store_root: str | None) -> str:
    """Start one batch run over $INPUT: the Job from the template, with its input and output."""
    kubectl = f"kubectl -n {shlex.quote(namespace)}"
    if store_root is not None:
        example = f"{store_root}/data/export.csv"
        default = f"{store_root}/{OUTPUTS_PREFIX}${RUN_VARIABLE}/"
        output = f'{OUTPUT_VARIABLE}="${{{OUTPUT_VARIABLE}:-{default}}}"'
    else:
        example = "s3://BUCKET/data/export.csv"
        output = (
            f': "${{{OUTPUT_VARIABLE}:?set {OUTPUT_VARIABLE} to the output prefix, '
            'e.g. s3://BUCKET/outputs/run-1/}"'
        )
    return " && ".join(
        [
            require_input(example),
            f'{RUN_VARIABLE}="${{{RUN_VARIABLE}:-{cron_job}-$(date +%Y%m%d%H%M%S)}}"',
            output,
            f'{kubectl} create job --from=cronjob/{cron_job} "${RUN_VARIABLE}" '
            "--dry-run=client -o yaml "
            f'| kubectl set env --local -f - {INPUT_ENV}="${INPUT_VARIABLE}" '
            f'{OUTPUT_ENV}="${OUTPUT_VARIABLE}" -o yaml '
            f"| {kubectl} create -f -",
            f'echo "started job/${RUN_VARIABLE}; when it completes: '
            f'${{{OUTPUT_VARIABLE}}}_manifest.json"',
        ]
    )
