"""The building blocks of the playbook schema: its strict base model and the kinds of names it holds.

Names are checked where they are declared (a DNS label, a Kubernetes object name, a Slack channel,
a version that can be an image tag, a template whose placeholders are allowed), so every model that
uses one refuses the same values with the same message.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from bot.domain.channels import is_channel_ref
from bot.domain.template import check_template


class Spec(BaseModel):
    """Strict, frozen base: unknown keys are mistakes, and values never change after loading."""

    # Attribute docstrings become the JSON Schema's descriptions: editors show them on hover.
    # Numbers are finite: a `.nan` threshold would pass every check (any comparison with NaN is
    # False), and `.inf` is no bound at all (leave the bound out instead).
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True, allow_inf_nan=False)


_VERSION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def check_version(version: str) -> str:
    """``version`` if it can be an image tag (what every template ends up in), else ``ValueError``."""
    if not _VERSION.match(version):
        raise ValueError(
            f"not a valid version: {version!r} (letters, digits, '.', '_', '-'; at most 128 characters)"
        )
    return version


def _dns_label(value: str) -> str:
    if len(value) > 63 or not _DNS_LABEL.match(value):
        raise ValueError(
            f"not a valid name: {value!r} (lowercase letters, digits and '-', at most 63 characters)"
        )
    return value


def _dns_subdomain(value: str) -> str:
    # 7 characters are kept for the "-canary" / "-green" Deployments the strategies derive from it.
    if len(value) > 246 or not _DNS_SUBDOMAIN.match(value):
        raise ValueError(f"not a valid Kubernetes name: {value!r} (lowercase letters, digits, '-' and '.')")
    return value


def _channel(value: str) -> str:
    if not is_channel_ref(value):
        raise ValueError(f"not a Slack channel: {value!r} (a channel id like C0123ABCD, or #name)")
    return value


def _label_key(value: str) -> str:
    if not _LABEL_KEY.match(value):
        raise ValueError(f"not a Kubernetes label key: {value!r}")
    return value


def _param_value(value: Any) -> Any:
    # Jenkins parameters are strings on the wire; YAML reads `true` and `3` as other types.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        raise ValueError(f"quote this value ({value!r}): YAML reads it as a number and may change it")
    return value


Name = Annotated[str, AfterValidator(_dns_label)]
"""A service, environment, guard, namespace or container name: a DNS label."""
KubeName = Annotated[str, AfterValidator(_dns_subdomain)]
"""A Kubernetes object name (DNS subdomain)."""
Channel = Annotated[str, AfterValidator(_channel)]
"""A Slack channel: an id (``C0123ABCD``) or ``#name``."""
Template = Annotated[str, Field(min_length=1), AfterValidator(check_template)]
"""A string with ``{service}``, ``{env}``, ``{version}``, ``{namespace}`` placeholders."""
ParamValue = Annotated[
    str,
    BeforeValidator(_param_value, json_schema_input_type=str | int | bool),
    AfterValidator(check_template),
]
LabelKey = Annotated[str, AfterValidator(_label_key)]
"""A Kubernetes label key (``shipthread.io/colour``)."""
