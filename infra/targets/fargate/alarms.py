"""CloudWatch alarms on the service's own signals: 5xx error rate, feature and prediction drift,
live quality below the model's test figure, capture failures when request capture is on, and a
candidate's aborted rollout while one is declared.

The service writes them as embedded-metric-format lines to its log group (namespace `modelship`,
dimension `Service` = the task family), turned on by `cloudwatch_metrics_env`. The alarms notify
the SNS topic `modelship:alarmTopicArn` names, if any; without one they only show in the console.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from infra.core.components import child_opts
from infra.core.container import service_env

NAMESPACE = "modelship"  # the service's modelship.serving.monitoring.cloudwatch.NAMESPACE
PERIOD_SECONDS = 300
ERROR_RATE_THRESHOLD = 0.05  # the share of 5xx answers that pages (as monitoring/alerts.yml)
DRIFT_PERIODS = 3  # 15 minutes in drift, as the Prometheus alert's `for: 15m`
CAPTURE_FAILING_PERIODS = 3  # failures in each of 15 minutes, as `ModelshipCaptureFailing`
QUALITY_PERIODS = 6  # below the test figure in each of 30 minutes, as `ModelshipQualityBelowTest`
ROLLOUT_ABORTED_PERIODS = 1  # the verdict is final once given: page at once


def cloudwatch_metrics_env(service: str) -> dict[str, str]:
    """The container variables that make the service write its CloudWatch metric lines."""
    return {service_env("cloudwatch_metrics"): "true", service_env("cloudwatch_service"): service}


class ServiceAlarmsArgs(TypedDict):
    """Inputs of `ServiceAlarms`."""

    service: str
    """The Service dimension the task writes (its family)."""
    tags: Mapping[str, str]
    alarm_actions: NotRequired[Sequence[pulumi.Input[str]]]
    """ARNs notified when an alarm fires and clears (an SNS topic); none by default."""
    capture: NotRequired[bool]
    """Request capture is on: alarm when captured rows cannot be written as well."""
    rollout: NotRequired[bool]
    """A candidate is declared: alarm when the service aborts its rollout."""


class ServiceAlarms(pulumi.ComponentResource):
    """Error-rate, feature-drift, prediction-drift and live-quality alarms for one service, a
    capture-failure alarm when it captures requests, a rollout-aborted one during a rollout."""

    error_rate: aws.cloudwatch.MetricAlarm
    feature_drift: aws.cloudwatch.MetricAlarm
    prediction_drift: aws.cloudwatch.MetricAlarm
    quality_below_test: aws.cloudwatch.MetricAlarm
    capture_failing: aws.cloudwatch.MetricAlarm | None
    rollout_aborted: aws.cloudwatch.MetricAlarm | None

    def __init__(
        self, name: str, args: ServiceAlarmsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("modelship:fargate:ServiceAlarms", name, None, opts)
        child = child_opts(self, opts)
        dimensions = {"Service": args["service"]}
        actions = list(args.get("alarm_actions", ()))
        common: dict[str, Any] = {
            "alarm_actions": actions,
            "ok_actions": actions,
            "tags": dict(args["tags"]),
        }

        def metric(query_id: str, metric_name: str) -> aws.cloudwatch.MetricAlarmMetricQueryArgs:
            return aws.cloudwatch.MetricAlarmMetricQueryArgs(
                id=query_id,
                return_data=False,
                metric=aws.cloudwatch.MetricAlarmMetricQueryMetricArgs(
                    namespace=NAMESPACE,
                    metric_name=metric_name,
                    dimensions=dimensions,
                    period=PERIOD_SECONDS,
                    stat="Sum",
                ),
            )

        self.error_rate = aws.cloudwatch.MetricAlarm(
            f"{name}-errors",
            alarm_description="More than 5% of requests answered 5xx over 5 minutes "
            "(docs/monitoring.md)",
            comparison_operator="GreaterThanThreshold",
            threshold=ERROR_RATE_THRESHOLD,
            evaluation_periods=1,
            # No traffic is no error: missing data keeps the alarm as it is.
            treat_missing_data="notBreaching",
            metric_queries=[
                metric("errors", "Errors5xx"),
                metric("requests", "Requests"),
                aws.cloudwatch.MetricAlarmMetricQueryArgs(
                    id="rate",
                    expression="IF(requests > 0, errors / requests, 0)",
                    label="5xx share of requests",
                    return_data=True,
                ),
            ],
            **common,
            opts=child,
        )
        self.feature_drift = self._sustained_alarm(
            f"{name}-feature-drift",
            metric_name="FeaturesInDrift",
            statistic="Maximum",
            at_least=1,
            periods=DRIFT_PERIODS,
            description="A feature's PSI stayed above its threshold for 15 minutes: "
            "GET /model/drift says which (docs/monitoring.md)",
            dimensions=dimensions,
            common=common,
            opts=child,
        )
        self.prediction_drift = self._sustained_alarm(
            f"{name}-prediction-drift",
            metric_name="PredictionDrift",
            statistic="Maximum",
            at_least=1,
            periods=DRIFT_PERIODS,
            description="The predictions' PSI stayed above its threshold for 15 minutes "
            "(docs/monitoring.md)",
            dimensions=dimensions,
            common=common,
            opts=child,
        )
        # The service judges each model version against its own card (MODELSHIP_QUALITY_MARGIN)
        # and writes the verdict at the Service level: an alarm cannot name a version that
        # changes with every deployed model. Silent until labels arrive (POST /feedback).
        self.quality_below_test = self._sustained_alarm(
            f"{name}-quality-below-test",
            metric_name="QualityBelowTest",
            description="Live model quality (labels joined by POST /feedback) stayed below the "
            "model card's test figure by more than the service's margin for 30 minutes: "
            "GET /model/quality (docs/monitoring.md)",
            statistic="Maximum",
            at_least=1,
            periods=QUALITY_PERIODS,
            every_period=True,
            dimensions=dimensions,
            common=common,
            opts=child,
        )
        self.capture_failing = None
        if args.get("capture", False):
            # Not one failed upload that the retry then wrote (monitoring/alerts.yml).
            self.capture_failing = self._sustained_alarm(
                f"{name}-capture-failing",
                metric_name="CaptureFailures",
                description="Captured requests could not be written to the model store for 15 "
                "minutes (uploads failing, or rows dropped on a full buffer): docs/monitoring.md",
                statistic="Sum",
                at_least=1,
                periods=CAPTURE_FAILING_PERIODS,
                every_period=True,
                dimensions=dimensions,
                common=common,
                opts=child,
            )
        self.rollout_aborted = None
        if args.get("rollout", False):
            self.rollout_aborted = self._rollout_aborted(name, dimensions, common, child)
        self.register_outputs(
            {
                "error_rate": self.error_rate.name,
                "feature_drift": self.feature_drift.name,
                "prediction_drift": self.prediction_drift.name,
                "quality_below_test": self.quality_below_test.name,
                **({"capture_failing": self.capture_failing.name} if self.capture_failing else {}),
                **({"rollout_aborted": self.rollout_aborted.name} if self.rollout_aborted else {}),
            }
        )

    @classmethod
    def _rollout_aborted(
        cls,
        name: str,
        dimensions: dict[str, str],
        common: dict[str, Any],
        opts: pulumi.ResourceOptions,
    ) -> aws.cloudwatch.MetricAlarm:
        """Written at the Service level like QualityBelowTest: 1 once a gate has failed and the
        brake took the candidate (modelship:candidateModelUri) out of traffic."""
        return cls._sustained_alarm(
            f"{name}-rollout-aborted",
            metric_name="RolloutAborted",
            description="The candidate model failed a rollout gate: the service stopped sending "
            "it traffic and answers from the primary; GET /rollout says which gate "
            "(docs/rollout.md). Clear modelship:candidateModelUri.",
            statistic="Maximum",
            at_least=1,
            periods=ROLLOUT_ABORTED_PERIODS,
            dimensions=dimensions,
            common=common,
            opts=opts,
        )

    @staticmethod
    def _sustained_alarm(
        name: str,
        *,
        metric_name: str,
        description: str,
        statistic: str,
        at_least: float,
        periods: int,
        dimensions: dict[str, str],
        common: dict[str, Any],
        opts: pulumi.ResourceOptions,
        every_period: bool = False,
    ) -> aws.cloudwatch.MetricAlarm:
        """An alarm on the 5-minute `statistic` of `metric_name` reaching `at_least` for
        `periods` periods (in each of them, with `every_period`)."""
        return aws.cloudwatch.MetricAlarm(
            name,
            alarm_description=description,
            namespace=NAMESPACE,
            metric_name=metric_name,
            dimensions=dimensions,
            statistic=statistic,
            period=PERIOD_SECONDS,
            evaluation_periods=periods,
            datapoints_to_alarm=periods if every_period else None,
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=at_least,
            treat_missing_data="notBreaching",
            **common,
            opts=opts,
        )
