"""What a playbook says about building and rolling out a version: the Jenkins job, the Kubernetes
Deployment, and the canary and blue-green strategies' settings.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator, model_validator

from bot.domain.durations import Duration
from bot.domain.guard_spec import GuardRef
from bot.domain.located import FieldErrors, Loc
from bot.domain.spec_types import KubeName, LabelKey, Name, ParamValue, Spec, Template
from bot.domain.template import placeholders

# ---------------------------------------------------------------------------------------------------
# Build and target


class JenkinsSpec(Spec):
    """The Jenkins job that builds (or verifies) the version before it is deployed."""

    job: Template
    """Job path with folders, e.g. ``team/checkout-build``."""
    parameters: dict[str, ParamValue] = Field(default_factory=dict)
    """Build parameters; values may use placeholders (``VERSION: "{version}"``)."""
    build_timeout: Duration = timedelta(minutes=30)
    """How long the build may queue and run before the deployment fails."""

    @field_validator("job")
    @classmethod
    def _job_path(cls, job: str) -> str:
        if job.startswith("/") or job.endswith("/") or "//" in job or job != job.strip():
            raise ValueError(f"not a job path: {job!r} (folders separated by '/', e.g. team/checkout-build)")
        return job

    @field_validator("parameters")
    @classmethod
    def _parameter_names(cls, parameters: dict[str, str]) -> dict[str, str]:
        for name in parameters:
            if not name.strip() or name != name.strip():
                raise FieldErrors([((name,), f"not a parameter name: {name!r}")])
        return parameters


class KubernetesSpec(Spec):
    """The Deployment a version is rolled out to."""

    cluster: str = Field(min_length=1)
    """A cluster named in the bot's config (``clusters``)."""
    namespace: Name
    deployment: KubeName
    container: Name
    """The container of the Deployment's pod template whose image changes."""
    image: Template
    """Image template, e.g. ``registry.example.com/checkout:{version}``."""
    replicas: int | None = Field(default=None, ge=1)
    """Replicas to keep; None leaves the Deployment's own count (and any autoscaler) alone."""
    rollout_timeout: Duration = timedelta(minutes=10)
    """How long a rollout may take before it counts as failed."""

    @field_validator("image")
    @classmethod
    def _image_has_version(cls, image: str) -> str:
        if "version" not in placeholders(image):
            raise ValueError(f"the image template must contain {{version}}: {image!r}")
        return image


# ---------------------------------------------------------------------------------------------------
# Strategies


class CanaryStep(Spec):
    """One canary step: the share of traffic (pods) the new version gets, then a hold."""

    weight: int = Field(ge=1, le=100)
    """Percent of replicas running the new version at this step."""
    pause: Duration = timedelta(0)
    """Minimum time to hold this step. With a guard, the step also holds for a clean guard window."""
    guard: GuardRef | None = None
    """Overrides the environment's guard for this step."""

    @field_validator("pause")
    @classmethod
    def _not_negative(cls, pause: timedelta) -> timedelta:
        if pause < timedelta(0):
            raise ValueError("pause must not be negative")
        return pause


def _step_shorthand(value: Any) -> Any:
    # `steps: [10, 50, 100]` is the common case; a mapping is for a step with its own pause/guard.
    if isinstance(value, int) and not isinstance(value, bool):
        return {"weight": value}
    return value


StepItem = Annotated[CanaryStep, BeforeValidator(_step_shorthand, json_schema_input_type=int | CanaryStep)]


class CanarySpec(Spec):
    """Canary settings: weights in increasing order. After the last step the version is promoted."""

    steps: tuple[StepItem, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _increasing(self) -> CanarySpec:
        problems: list[tuple[Loc, str]] = []
        for i, (before, after) in enumerate(zip(self.steps, self.steps[1:], strict=False), start=1):
            if after.weight <= before.weight:
                problems.append(
                    (("steps", i), f"weights must increase: {after.weight} after {before.weight}")
                )
        if problems:
            raise FieldErrors(problems)
        return self


class BlueGreenSpec(Spec):
    """Blue-green settings: the Service whose selector switches to the new colour once it is ready."""

    service: KubeName
    """The Kubernetes Service that carries the traffic."""
    colour_label: LabelKey = "shipthread.io/colour"
    """The label key whose value (``blue`` or ``green``) the Service's selector switches."""
