"""config.xml for the Jenkins emulator: reading it, the empty templates, and Jenkins' name rules.

Why it exists: Jenkins keeps every job and folder as a config.xml, and clients create and change
items by posting one. The emulator acts on a few parts of it (item type, parameters, ``disabled``,
``concurrentBuild``); this module turns the XML into a :class:`JobConfig` and back, apart from the
HTTP layer and the emulator's state so each can be read and tested on its own.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, TypeAlias
from xml.sax.saxutils import escape

FOLDER_CLASS = "com.cloudbees.hudson.plugins.folder.Folder"
FREESTYLE_CLASS = "hudson.model.FreeStyleProject"
PIPELINE_CLASS = "org.jenkinsci.plugins.workflow.job.WorkflowJob"
# Jenkins.checkGoodName refuses these characters in item names.
_BAD_NAME_CHARS = set("?*/\\%!@#$^&|<>[]:;")

Json: TypeAlias = Any
"""A JSON value as ``json.loads`` gives it back."""


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class ParamValue:
    cls: str
    name: str
    value: str | bool
    secret: bool = False

    @property
    def text(self) -> str:
        """The value as Jenkins prints it (Java's ``true``/``false`` for booleans)."""
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        return self.value

    def to_json(self) -> dict[str, Json]:
        out: dict[str, Json] = {"_class": self.cls, "name": self.name}
        if not self.secret:
            out["value"] = self.value
        return out


@dataclass(frozen=True)
class ParamDef:
    """A parameter definition read from config.xml's ``<parameterDefinitions>``."""

    kind: str
    name: str
    description: str
    default: str | bool
    choices: tuple[str, ...] = ()
    trim: bool = False

    @property
    def short_type(self) -> str:
        return self.kind.rsplit(".", 1)[-1]

    @property
    def value_class(self) -> str:
        if self.kind.endswith("Definition"):
            return self.kind[: -len("Definition")] + "Value"
        return "hudson.model.StringParameterValue"

    @property
    def is_boolean(self) -> bool:
        return "Boolean" in self.short_type

    @property
    def is_choice(self) -> bool:
        return "Choice" in self.short_type

    @property
    def secret(self) -> bool:
        return "Password" in self.short_type

    def value(self, raw: str | None) -> ParamValue:
        value: str | bool
        if raw is None:
            value = self.default
        elif self.is_boolean:
            value = raw.strip().lower() == "true"
        elif self.is_choice:
            if raw not in self.choices:
                raise ConfigError(f"Illegal choice for parameter {self.name}: {raw}")
            value = raw
        else:
            value = raw.strip() if self.trim else raw
        return ParamValue(self.value_class, self.name, value, self.secret)

    def to_json(self) -> dict[str, Json]:
        out: dict[str, Json] = {
            "_class": self.kind,
            "defaultParameterValue": self.value(None).to_json(),
            "description": self.description,
            "name": self.name,
            "type": self.short_type,
        }
        if self.is_choice:
            out["choices"] = list(self.choices)
        return out


@dataclass(frozen=True)
class JobConfig:
    """What the emulator reads out of an item's config.xml (the XML itself is kept verbatim)."""

    xml: str
    item_class: str
    description: str | None
    disabled: bool
    concurrent: bool
    params: tuple[ParamDef, ...]

    @property
    def is_folder(self) -> bool:
        return self.item_class == FOLDER_CLASS

    @property
    def build_class(self) -> str:
        if self.item_class == PIPELINE_CLASS:
            return "org.jenkinsci.plugins.workflow.job.WorkflowRun"
        return "hudson.model.FreeStyleBuild"


_ROOT_TAGS = {
    "project": FREESTYLE_CLASS,
    "flow-definition": PIPELINE_CLASS,
    "matrix-project": "hudson.matrix.MatrixProject",
    "maven2-moduleset": "hudson.maven.MavenModuleSet",
}

EMPTY_PROJECT_XML = """<?xml version='1.1' encoding='UTF-8'?>
<project>
  <description></description>
  <keepDependencies>false</keepDependencies>
  <properties/>
  <scm class="hudson.scm.NullSCM"/>
  <canRoam>true</canRoam>
  <disabled>false</disabled>
  <blockBuildWhenDownstreamBuilding>false</blockBuildWhenDownstreamBuilding>
  <blockBuildWhenUpstreamBuilding>false</blockBuildWhenUpstreamBuilding>
  <triggers/>
  <concurrentBuild>false</concurrentBuild>
  <builders/>
  <publishers/>
  <buildWrappers/>
</project>"""

EMPTY_FOLDER_XML = """<?xml version='1.1' encoding='UTF-8'?>
<com.cloudbees.hudson.plugins.folder.Folder plugin="cloudbees-folder">
  <actions/>
  <description></description>
  <properties/>
  <folderViews class="com.cloudbees.hudson.plugins.folder.views.DefaultFolderViewHolder">
    <views>
      <hudson.model.AllView>
        <name>All</name>
        <filterExecutors>false</filterExecutors>
        <filterQueue>false</filterQueue>
      </hudson.model.AllView>
    </views>
  </folderViews>
  <healthMetrics/>
</com.cloudbees.hudson.plugins.folder.Folder>"""

EMPTY_PIPELINE_XML = """<?xml version='1.1' encoding='UTF-8'?>
<flow-definition plugin="workflow-job">
  <description></description>
  <keepDependencies>false</keepDependencies>
  <properties/>
  <triggers/>
  <disabled>false</disabled>
</flow-definition>"""


def _text(element: ET.Element | None) -> str | None:
    return None if element is None else (element.text or "")


def parameterized_job_xml(*params: str, concurrent: bool = False, description: str = "") -> str:
    """A freestyle job's config.xml declaring string parameters ``params``.

    Jenkins drops build parameters a job does not declare, so a job Shipthread builds must declare
    ``SHIPTHREAD_KEY`` (its idempotency key) next to its own parameters.
    """
    definitions = "".join(
        "<hudson.model.StringParameterDefinition>"
        f"<name>{escape(name)}</name><description></description><defaultValue></defaultValue>"
        "<trim>false</trim></hudson.model.StringParameterDefinition>"
        for name in params
    )
    return (
        f"<?xml version='1.1' encoding='UTF-8'?><project><description>{escape(description)}</description>"
        "<properties><hudson.model.ParametersDefinitionProperty><parameterDefinitions>"
        f"{definitions}</parameterDefinitions></hudson.model.ParametersDefinitionProperty></properties>"
        f"<disabled>false</disabled><concurrentBuild>{str(concurrent).lower()}</concurrentBuild></project>"
    )


def parse_config(xml: str) -> JobConfig:
    """Read the parts of a job or folder config.xml the emulator acts on."""
    try:
        # Expat >= 2.4 refuses entity-expansion bombs; the sandbox only parses its callers' XML.
        root = ET.fromstring(xml)  # noqa: S314
    except ET.ParseError as exc:
        raise ConfigError(f"Failed to parse the job configuration: {exc}") from exc
    tag = root.tag
    item_class = _ROOT_TAGS.get(tag, tag)
    if "." not in item_class:
        raise ConfigError(f"Unrecognized item type <{tag}> in config.xml")
    params: list[ParamDef] = []
    for definitions in root.iter("parameterDefinitions"):
        for node in definitions:
            name = (_text(node.find("name")) or "").strip()
            if not name:
                raise ConfigError(f"A parameter definition <{node.tag}> has no name")
            params.append(_param_def(node, name))
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise ConfigError(f"Duplicate parameter names in {names}")
    if item_class == PIPELINE_CLASS:
        concurrent = not any(el.tag.endswith("DisableConcurrentBuildsJobProperty") for el in root.iter())
    else:
        concurrent = (_text(root.find("concurrentBuild")) or "").strip() == "true"
    return JobConfig(
        xml=xml,
        item_class=item_class,
        description=_text(root.find("description")) or None,
        disabled=(_text(root.find("disabled")) or "").strip() == "true",
        concurrent=concurrent,
        params=tuple(params),
    )


def _param_def(node: ET.Element, name: str) -> ParamDef:
    kind = node.tag
    short = kind.rsplit(".", 1)[-1]
    description = _text(node.find("description")) or ""
    raw_default = _text(node.find("defaultValue"))
    if "Boolean" in short:
        return ParamDef(kind, name, description, (raw_default or "").strip() == "true")
    if "Choice" in short:
        choices_el = node.find("choices")
        choices = tuple((s.text or "") for s in choices_el.iter("string")) if choices_el is not None else ()
        if choices_el is not None and not choices and (choices_el.text or "").strip():
            choices = tuple(line for line in (choices_el.text or "").splitlines() if line)
        return ParamDef(kind, name, description, choices[0] if choices else "", choices)
    trim = (_text(node.find("trim")) or "").strip() == "true"
    default = raw_default or ""
    return ParamDef(kind, name, description, default.strip() if trim else default, (), trim)


def set_disabled(xml: str, disabled: bool) -> str:
    value = "true" if disabled else "false"
    if re.search(r"<disabled>\s*\w*\s*</disabled>", xml):
        return re.sub(r"<disabled>\s*\w*\s*</disabled>", f"<disabled>{value}</disabled>", xml, count=1)
    return xml


def check_good_name(name: str) -> str | None:
    """Jenkins.checkGoodName: the reason a name is refused, or None when it is fine."""
    if not name.strip():
        return "No name is specified"
    if name in (".", ".."):
        return f"“{name}” is not an allowed name"
    for ch in name:
        if ch in _BAD_NAME_CHARS or ord(ch) < 32:
            return f"‘{ch}’ is an unsafe character"
    return None
