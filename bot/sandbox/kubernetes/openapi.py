"""The OpenAPI v3 documents of the emulated kinds, generated from a compact table of their fields.

kubectl reads ``/openapi/v3`` before ``apply -f`` and ``create -f``: it looks for a PATCH operation
carrying ``x-kubernetes-group-version-kind`` and a ``fieldValidation`` parameter (so it can leave
validation to the server) and it computes ``apply`` patches from the schemas'
``x-kubernetes-patch-strategy`` / ``x-kubernetes-patch-merge-key``. The server reads the same
schemas to apply strategic merge patches (``patch_meta``), so client and server agree on which
lists merge on which key.

The field table below follows the Kubernetes 1.3x API. Rarely used nested types are plain objects;
everything a Deployment, ReplicaSet, Service, Pod or Namespace manifest commonly holds is typed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from functools import cache
from typing import Any

from bot.sandbox.kubernetes import config_kinds
from bot.sandbox.kubernetes.patch import NO_META, FieldMeta, PatchMeta
from bot.sandbox.kubernetes.vocabulary import GROUP_VERSIONS, RBAC, JsonDict, ResourceType, resources_of

_CORE = "io.k8s.api.core.v1"
_APPS = "io.k8s.api.apps.v1"
_AUTOSCALING = "io.k8s.api.autoscaling.v1"
_RBAC = "io.k8s.api.rbac.v1"
_META = "io.k8s.apimachinery.pkg.apis.meta.v1"

# Field types, a small language: "str", "int32", "int64", "bool", "time", "ios" (int or string),
# "qty" (quantity), "obj" (free-form object), "map" (string → string), "map:qty"; a type name is a
# reference; "[T]" is an atomic list, "[T]@key" a list merged on key, "[T]@key+retain" also retains
# keys, "[T]set" a merged list of scalars. A trailing "!" marks a required field.
_TYPES: dict[str, dict[str, dict[str, str]]] = {
    _META: {
        "ObjectMeta": {
            "annotations": "map", "creationTimestamp": "time", "deletionGracePeriodSeconds": "int64",
            "deletionTimestamp": "time", "finalizers": "[str]set", "generateName": "str",
            "generation": "int64",
            "labels": "map", "managedFields": "[ManagedFieldsEntry]", "name": "str", "namespace": "str",
            "ownerReferences": "[OwnerReference]@uid", "resourceVersion": "str", "selfLink": "str",
            "uid": "str",
        },
        "OwnerReference": {
            "apiVersion": "str!", "blockOwnerDeletion": "bool", "controller": "bool", "kind": "str!",
            "name": "str!", "uid": "str!",
        },
        "ManagedFieldsEntry": {
            "apiVersion": "str", "fieldsType": "str", "fieldsV1": "obj", "manager": "str", "operation": "str",
            "subresource": "str", "time": "time",
        },
        "ListMeta": {"continue": "str", "remainingItemCount": "int64", "resourceVersion": "str",
        "selfLink": "str"},
        "LabelSelector": {"matchExpressions": "[LabelSelectorRequirement]", "matchLabels": "map"},
        "LabelSelectorRequirement": {"key": "str!", "operator": "str!", "values": "[str]"},
        "Condition": {
            "lastTransitionTime": "time!", "message": "str!", "observedGeneration": "int64", "reason": "str!",
            "status": "str!", "type": "str!",
        },
        "Status": {
            "apiVersion": "str", "code": "int32", "details": "StatusDetails", "kind": "str", "message": "str",
            "metadata": "ListMeta", "reason": "str", "status": "str",
        },
        "StatusDetails": {
            "causes": "[StatusCause]", "group": "str", "kind": "str", "name": "str",
            "retryAfterSeconds": "int32",
            "uid": "str",
        },
        "StatusCause": {"field": "str", "message": "str", "reason": "str"},
        "DeleteOptions": {
            "apiVersion": "str", "dryRun": "[str]", "gracePeriodSeconds": "int64",
            "ignoreStoreReadErrorWithClusterBreakingPotential": "bool", "kind": "str",
            "orphanDependents": "bool",
            "preconditions": "Preconditions", "propagationPolicy": "str",
        },
        "Preconditions": {"resourceVersion": "str", "uid": "str"},
        "WatchEvent": {"object": "obj!", "type": "str!"},
    },
    _AUTOSCALING: {
        "Scale": {"apiVersion": "str", "kind": "str", "metadata": "ObjectMeta", "spec": "ScaleSpec",
                  "status": "ScaleStatus"},
        "ScaleSpec": {"replicas": "int32"},
        "ScaleStatus": {"replicas": "int32!", "selector": "str"},
    },
    _APPS: {
        "Deployment": {"apiVersion": "str", "kind": "str", "metadata": "ObjectMeta", "spec": "DeploymentSpec",
                       "status": "DeploymentStatus"},
        "DeploymentSpec": {
            "minReadySeconds": "int32", "paused": "bool", "progressDeadlineSeconds": "int32",
            "replicas": "int32",
            "revisionHistoryLimit": "int32", "selector": "LabelSelector!",
            "strategy": "DeploymentStrategy+retain",
            "template": "PodTemplateSpec!",
        },
        "DeploymentStrategy": {"rollingUpdate": "RollingUpdateDeployment", "type": "str"},
        "RollingUpdateDeployment": {"maxSurge": "ios", "maxUnavailable": "ios"},
        "DeploymentStatus": {
            "availableReplicas": "int32", "collisionCount": "int32",
            "conditions": "[DeploymentCondition]@type",
            "observedGeneration": "int64", "readyReplicas": "int32", "replicas": "int32",
            "terminatingReplicas": "int32", "unavailableReplicas": "int32", "updatedReplicas": "int32",
        },
        "DeploymentCondition": {
            "lastTransitionTime": "time", "lastUpdateTime": "time", "message": "str", "reason": "str",
            "status": "str!", "type": "str!",
        },
        "ReplicaSet": {"apiVersion": "str", "kind": "str", "metadata": "ObjectMeta", "spec": "ReplicaSetSpec",
                       "status": "ReplicaSetStatus"},
        "ReplicaSetSpec": {"minReadySeconds": "int32", "replicas": "int32", "selector": "LabelSelector!",
                           "template": "PodTemplateSpec"},
        "ReplicaSetStatus": {
            "availableReplicas": "int32", "conditions": "[ReplicaSetCondition]@type",
            "fullyLabeledReplicas": "int32", "observedGeneration": "int64", "readyReplicas": "int32",
            "replicas": "int32!", "terminatingReplicas": "int32",
        },
        "ReplicaSetCondition": {"lastTransitionTime": "time", "message": "str", "reason": "str",
        "status": "str!",
                                "type": "str!"},
    },
    _CORE: {
        "Namespace": {"apiVersion": "str", "kind": "str", "metadata": "ObjectMeta", "spec": "NamespaceSpec",
                      "status": "NamespaceStatus"},
        "NamespaceSpec": {"finalizers": "[str]"},
        "NamespaceStatus": {"conditions": "[NamespaceCondition]@type", "phase": "str"},
        "NamespaceCondition": {"lastTransitionTime": "time", "message": "str", "reason": "str",
        "status": "str!",
                               "type": "str!"},
        "Event": {
            "action": "str", "apiVersion": "str", "count": "int32", "eventTime": "time",
            "firstTimestamp": "time",
            "involvedObject": "ObjectReference!", "kind": "str", "lastTimestamp": "time", "message": "str",
            "metadata": "ObjectMeta!", "reason": "str", "related": "ObjectReference",
            "reportingComponent": "str",
            "reportingInstance": "str", "series": "EventSeries", "source": "EventSource", "type": "str",
        },
        "ObjectReference": {
            "apiVersion": "str", "fieldPath": "str", "kind": "str", "name": "str", "namespace": "str",
            "resourceVersion": "str", "uid": "str",
        },
        "EventSeries": {"count": "int32", "lastObservedTime": "time"},
        "EventSource": {"component": "str", "host": "str"},
        "Service": {"apiVersion": "str", "kind": "str", "metadata": "ObjectMeta", "spec": "ServiceSpec",
                    "status": "ServiceStatus"},
        "ServiceSpec": {
            "allocateLoadBalancerNodePorts": "bool", "clusterIP": "str", "clusterIPs": "[str]",
            "externalIPs": "[str]", "externalName": "str", "externalTrafficPolicy": "str",
            "healthCheckNodePort": "int32", "internalTrafficPolicy": "str", "ipFamilies": "[str]",
            "ipFamilyPolicy": "str", "loadBalancerClass": "str", "loadBalancerIP": "str",
            "loadBalancerSourceRanges": "[str]", "ports": "[ServicePort]@port",
            "publishNotReadyAddresses": "bool",
            "selector": "map", "sessionAffinity": "str", "sessionAffinityConfig": "SessionAffinityConfig",
            "trafficDistribution": "str", "type": "str",
        },
        "ServicePort": {"appProtocol": "str", "name": "str", "nodePort": "int32", "port": "int32!",
                        "protocol": "str", "targetPort": "ios"},
        "SessionAffinityConfig": {"clientIP": "ClientIPConfig"},
        "ClientIPConfig": {"timeoutSeconds": "int32"},
        "ServiceStatus": {"conditions": "[Condition]@type", "loadBalancer": "LoadBalancerStatus"},
        "LoadBalancerStatus": {"ingress": "[LoadBalancerIngress]"},
        "LoadBalancerIngress": {"hostname": "str", "ip": "str", "ipMode": "str", "ports": "[PortStatus]"},
        "PortStatus": {"error": "str", "port": "int32!", "protocol": "str!"},
        "Pod": {"apiVersion": "str", "kind": "str", "metadata": "ObjectMeta", "spec": "PodSpec",
                "status": "PodStatus"},
        "PodTemplateSpec": {"metadata": "ObjectMeta", "spec": "PodSpec"},
        "PodSpec": {
            "activeDeadlineSeconds": "int64", "affinity": "Affinity", "automountServiceAccountToken": "bool",
            "containers": "[Container]@name!", "dnsConfig": "PodDNSConfig", "dnsPolicy": "str",
            "enableServiceLinks": "bool", "ephemeralContainers": "[EphemeralContainer]@name",
            "hostAliases": "[HostAlias]@ip", "hostIPC": "bool", "hostNetwork": "bool", "hostPID": "bool",
            "hostUsers": "bool", "hostname": "str", "hostnameOverride": "str",
            "imagePullSecrets": "[LocalObjectReference]@name", "initContainers": "[Container]@name",
            "nodeName": "str", "nodeSelector": "map", "os": "PodOS", "overhead": "map:qty",
            "preemptionPolicy": "str", "priority": "int32", "priorityClassName": "str",
            "readinessGates": "[PodReadinessGate]", "resourceClaims": "[PodResourceClaim]@name+retain",
            "resources": "ResourceRequirements", "restartPolicy": "str", "runtimeClassName": "str",
            "schedulerName": "str", "schedulingGates": "[PodSchedulingGate]@name",
            "securityContext": "PodSecurityContext", "serviceAccount": "str", "serviceAccountName": "str",
            "setHostnameAsFQDN": "bool", "shareProcessNamespace": "bool", "subdomain": "str",
            "terminationGracePeriodSeconds": "int64", "tolerations": "[Toleration]",
            "topologySpreadConstraints": "[TopologySpreadConstraint]@topologyKey",
            "volumes": "[Volume]@name+retain",
        },
        "Container": {
            "args": "[str]", "command": "[str]", "env": "[EnvVar]@name", "envFrom": "[EnvFromSource]",
            "image": "str", "imagePullPolicy": "str", "lifecycle": "Lifecycle", "livenessProbe": "Probe",
            "name": "str!", "ports": "[ContainerPort]@containerPort", "readinessProbe": "Probe",
            "resizePolicy": "[ContainerResizePolicy]", "resources": "ResourceRequirements",
            "restartPolicy": "str", "restartPolicyRules": "[obj]", "securityContext": "SecurityContext",
            "startupProbe": "Probe", "stdin": "bool", "stdinOnce": "bool", "terminationMessagePath": "str",
            "terminationMessagePolicy": "str", "tty": "bool", "volumeDevices": "[VolumeDevice]@devicePath",
            "volumeMounts": "[VolumeMount]@mountPath", "workingDir": "str",
        },
        "ContainerPort": {"containerPort": "int32!", "hostIP": "str", "hostPort": "int32", "name": "str",
                          "protocol": "str"},
        "ContainerResizePolicy": {"resourceName": "str!", "restartPolicy": "str!"},
        "EnvVar": {"name": "str!", "value": "str", "valueFrom": "EnvVarSource"},
        "EnvVarSource": {
            "configMapKeyRef": "ConfigMapKeySelector", "fieldRef": "ObjectFieldSelector", "fileKeyRef": "obj",
            "resourceFieldRef": "ResourceFieldSelector", "secretKeyRef": "SecretKeySelector",
        },
        "ConfigMapKeySelector": {"key": "str!", "name": "str", "optional": "bool"},
        "SecretKeySelector": {"key": "str!", "name": "str", "optional": "bool"},
        "ObjectFieldSelector": {"apiVersion": "str", "fieldPath": "str!"},
        "ResourceFieldSelector": {"containerName": "str", "divisor": "qty", "resource": "str!"},
        "EnvFromSource": {"configMapRef": "ConfigMapEnvSource", "prefix": "str",
        "secretRef": "SecretEnvSource"},
        "ConfigMapEnvSource": {"name": "str", "optional": "bool"},
        "SecretEnvSource": {"name": "str", "optional": "bool"},
        "Lifecycle": {"postStart": "LifecycleHandler", "preStop": "LifecycleHandler", "stopSignal": "str"},
        "LifecycleHandler": {"exec": "ExecAction", "httpGet": "HTTPGetAction", "sleep": "SleepAction",
                             "tcpSocket": "TCPSocketAction"},
        "Probe": {
            "exec": "ExecAction", "failureThreshold": "int32", "grpc": "GRPCAction",
            "httpGet": "HTTPGetAction",
            "initialDelaySeconds": "int32", "periodSeconds": "int32", "successThreshold": "int32",
            "tcpSocket": "TCPSocketAction", "terminationGracePeriodSeconds": "int64",
            "timeoutSeconds": "int32",
        },
        "ExecAction": {"command": "[str]"},
        "HTTPGetAction": {"host": "str", "httpHeaders": "[HTTPHeader]", "path": "str", "port": "ios!",
                          "scheme": "str"},
        "HTTPHeader": {"name": "str!", "value": "str!"},
        "SleepAction": {"seconds": "int64!"},
        "TCPSocketAction": {"host": "str", "port": "ios!"},
        "GRPCAction": {"port": "int32!", "service": "str"},
        "ResourceRequirements": {"claims": "[ResourceClaim]", "limits": "map:qty", "requests": "map:qty"},
        "ResourceClaim": {"name": "str!", "request": "str"},
        "SecurityContext": {
            "allowPrivilegeEscalation": "bool", "appArmorProfile": "AppArmorProfile",
            "capabilities": "Capabilities", "privileged": "bool", "procMount": "str",
            "readOnlyRootFilesystem": "bool", "runAsGroup": "int64", "runAsNonRoot": "bool",
            "runAsUser": "int64",
            "seLinuxOptions": "SELinuxOptions", "seccompProfile": "SeccompProfile",
            "windowsOptions": "WindowsSecurityContextOptions",
        },
        "Capabilities": {"add": "[str]", "drop": "[str]"},
        "PodSecurityContext": {
            "appArmorProfile": "AppArmorProfile", "fsGroup": "int64", "fsGroupChangePolicy": "str",
            "runAsGroup": "int64", "runAsNonRoot": "bool", "runAsUser": "int64", "seLinuxChangePolicy": "str",
            "seLinuxOptions": "SELinuxOptions", "seccompProfile": "SeccompProfile",
            "supplementalGroups": "[int64]", "supplementalGroupsPolicy": "str", "sysctls": "[Sysctl]",
            "windowsOptions": "WindowsSecurityContextOptions",
        },
        "AppArmorProfile": {"localhostProfile": "str", "type": "str!"},
        "SeccompProfile": {"localhostProfile": "str", "type": "str!"},
        "SELinuxOptions": {"level": "str", "role": "str", "type": "str", "user": "str"},
        "Sysctl": {"name": "str!", "value": "str!"},
        "WindowsSecurityContextOptions": {"gmsaCredentialSpec": "str", "gmsaCredentialSpecName": "str",
                                          "hostProcess": "bool", "runAsUserName": "str"},
        "VolumeDevice": {"devicePath": "str!", "name": "str!"},
        "VolumeMount": {"mountPath": "str!", "mountPropagation": "str", "name": "str!", "readOnly": "bool",
                        "recursiveReadOnly": "str", "subPath": "str", "subPathExpr": "str"},
        "Affinity": {"nodeAffinity": "NodeAffinity", "podAffinity": "PodAffinity",
                     "podAntiAffinity": "PodAntiAffinity"},
        "NodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": "[PreferredSchedulingTerm]",
            "requiredDuringSchedulingIgnoredDuringExecution": "NodeSelector",
        },
        "PreferredSchedulingTerm": {"preference": "NodeSelectorTerm!", "weight": "int32!"},
        "NodeSelector": {"nodeSelectorTerms": "[NodeSelectorTerm]!"},
        "NodeSelectorTerm": {"matchExpressions": "[NodeSelectorRequirement]",
                             "matchFields": "[NodeSelectorRequirement]"},
        "NodeSelectorRequirement": {"key": "str!", "operator": "str!", "values": "[str]"},
        "PodAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": "[WeightedPodAffinityTerm]",
            "requiredDuringSchedulingIgnoredDuringExecution": "[PodAffinityTerm]",
        },
        "PodAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": "[WeightedPodAffinityTerm]",
            "requiredDuringSchedulingIgnoredDuringExecution": "[PodAffinityTerm]",
        },
        "WeightedPodAffinityTerm": {"podAffinityTerm": "PodAffinityTerm!", "weight": "int32!"},
        "PodAffinityTerm": {
            "labelSelector": "LabelSelector", "matchLabelKeys": "[str]", "mismatchLabelKeys": "[str]",
            "namespaceSelector": "LabelSelector", "namespaces": "[str]", "topologyKey": "str!",
        },
        "PodDNSConfig": {"nameservers": "[str]", "options": "[PodDNSConfigOption]", "searches": "[str]"},
        "PodDNSConfigOption": {"name": "str", "value": "str"},
        "HostAlias": {"hostnames": "[str]", "ip": "str!"},
        "LocalObjectReference": {"name": "str"},
        "PodOS": {"name": "str!"},
        "PodReadinessGate": {"conditionType": "str!"},
        "PodResourceClaim": {"name": "str!", "resourceClaimName": "str", "resourceClaimTemplateName": "str"},
        "PodSchedulingGate": {"name": "str!"},
        "Toleration": {"effect": "str", "key": "str", "operator": "str", "tolerationSeconds": "int64",
                       "value": "str"},
        "TopologySpreadConstraint": {
            "labelSelector": "LabelSelector", "matchLabelKeys": "[str]", "maxSkew": "int32!",
            "minDomains": "int32", "nodeAffinityPolicy": "str", "nodeTaintsPolicy": "str",
            "topologyKey": "str!", "whenUnsatisfiable": "str!",
        },
        "Volume": {
            "awsElasticBlockStore": "obj", "azureDisk": "obj", "azureFile": "obj", "cephfs": "obj",
            "cinder": "obj", "configMap": "ConfigMapVolumeSource", "csi": "CSIVolumeSource",
            "downwardAPI": "DownwardAPIVolumeSource", "emptyDir": "EmptyDirVolumeSource", "ephemeral": "obj",
            "fc": "obj", "flexVolume": "obj", "flocker": "obj", "gcePersistentDisk": "obj", "gitRepo": "obj",
            "glusterfs": "obj", "hostPath": "HostPathVolumeSource", "image": "ImageVolumeSource",
            "iscsi": "obj",
            "name": "str!", "nfs": "NFSVolumeSource",
            "persistentVolumeClaim": "PersistentVolumeClaimVolumeSource", "photonPersistentDisk": "obj",
            "portworxVolume": "obj", "projected": "ProjectedVolumeSource", "quobyte": "obj", "rbd": "obj",
            "scaleIO": "obj", "secret": "SecretVolumeSource", "storageos": "obj", "vsphereVolume": "obj",
        },
        "ConfigMapVolumeSource": {"defaultMode": "int32", "items": "[KeyToPath]", "name": "str",
                                  "optional": "bool"},
        "SecretVolumeSource": {"defaultMode": "int32", "items": "[KeyToPath]", "optional": "bool",
                               "secretName": "str"},
        "KeyToPath": {"key": "str!", "mode": "int32", "path": "str!"},
        "EmptyDirVolumeSource": {"medium": "str", "sizeLimit": "qty"},
        "HostPathVolumeSource": {"path": "str!", "type": "str"},
        "NFSVolumeSource": {"path": "str!", "readOnly": "bool", "server": "str!"},
        "PersistentVolumeClaimVolumeSource": {"claimName": "str!", "readOnly": "bool"},
        "ImageVolumeSource": {"pullPolicy": "str", "reference": "str"},
        "CSIVolumeSource": {"driver": "str!", "fsType": "str", "nodePublishSecretRef": "LocalObjectReference",
                            "readOnly": "bool", "volumeAttributes": "map"},
        "DownwardAPIVolumeSource": {"defaultMode": "int32", "items": "[DownwardAPIVolumeFile]"},
        "DownwardAPIVolumeFile": {"fieldRef": "ObjectFieldSelector", "mode": "int32", "path": "str!",
                                  "resourceFieldRef": "ResourceFieldSelector"},
        "ProjectedVolumeSource": {"defaultMode": "int32", "sources": "[VolumeProjection]"},
        "VolumeProjection": {
            "clusterTrustBundle": "obj", "configMap": "ConfigMapProjection",
            "downwardAPI": "DownwardAPIProjection",
            "podCertificate": "obj", "secret": "SecretProjection",
            "serviceAccountToken": "ServiceAccountTokenProjection",
        },
        "ConfigMapProjection": {"items": "[KeyToPath]", "name": "str", "optional": "bool"},
        "SecretProjection": {"items": "[KeyToPath]", "name": "str", "optional": "bool"},
        "DownwardAPIProjection": {"items": "[DownwardAPIVolumeFile]"},
        "ServiceAccountTokenProjection": {"audience": "str", "expirationSeconds": "int64", "path": "str!"},
        "PodStatus": {
            "conditions": "[PodCondition]@type", "containerStatuses": "[ContainerStatus]",
            "ephemeralContainerStatuses": "[ContainerStatus]", "hostIP": "str", "hostIPs": "[HostIP]@ip",
            "initContainerStatuses": "[ContainerStatus]", "message": "str", "nominatedNodeName": "str",
            "observedGeneration": "int64", "phase": "str", "podIP": "str", "podIPs": "[PodIP]@ip",
            "qosClass": "str", "reason": "str", "resize": "str", "resourceClaimStatuses": "[obj]",
            "startTime": "time",
        },
        "PodCondition": {
            "lastProbeTime": "time", "lastTransitionTime": "time", "message": "str",
            "observedGeneration": "int64",
            "reason": "str", "status": "str!", "type": "str!",
        },
        "HostIP": {"ip": "str!"},
        "PodIP": {"ip": "str!"},
        "ContainerStatus": {
            "allocatedResources": "map:qty", "allocatedResourcesStatus": "[obj]", "containerID": "str",
            "image": "str!", "imageID": "str!", "lastState": "ContainerState", "name": "str!",
            "ready": "bool!",
            "resources": "ResourceRequirements", "restartCount": "int32!", "started": "bool",
            "state": "ContainerState", "stopSignal": "str", "user": "obj", "volumeMounts": "[obj]",
        },
        "ContainerState": {"running": "ContainerStateRunning", "terminated": "ContainerStateTerminated",
                           "waiting": "ContainerStateWaiting"},
        "ContainerStateRunning": {"startedAt": "time"},
        "ContainerStateTerminated": {
            "containerID": "str", "exitCode": "int32!", "finishedAt": "time", "message": "str",
            "reason": "str",
            "signal": "int32", "startedAt": "time",
        },
        "ContainerStateWaiting": {"message": "str", "reason": "str"},
    },
}  # fmt: skip

# EphemeralContainer is a Container that also names the container it debugs.
_TYPES[_CORE]["EphemeralContainer"] = {**_TYPES[_CORE]["Container"], "targetContainerName": "str"}
# ServiceAccount, ConfigMap, Secret, Role, RoleBinding: their own module (config_kinds).
_TYPES[_CORE].update(config_kinds.CORE_TYPES)
_TYPES[_RBAC] = dict(config_kinds.RBAC_TYPES)

# Kinds (with their lists) that carry x-kubernetes-group-version-kind.
_KINDS: dict[str, tuple[str, str, str]] = {
    f"{_APPS}.Deployment": ("apps", "v1", "Deployment"),
    f"{_APPS}.ReplicaSet": ("apps", "v1", "ReplicaSet"),
    f"{_AUTOSCALING}.Scale": ("autoscaling", "v1", "Scale"),
    f"{_CORE}.Namespace": ("", "v1", "Namespace"),
    f"{_CORE}.Pod": ("", "v1", "Pod"),
    f"{_CORE}.Service": ("", "v1", "Service"),
    f"{_CORE}.Event": ("", "v1", "Event"),
    f"{_META}.Status": ("", "v1", "Status"),
}
_KINDS |= {
    f"{_RBAC if group == RBAC else _CORE}.{kind}": (group, version, kind)
    for kind, (group, version) in config_kinds.KINDS.items()
}
_LISTED = ("Deployment", "ReplicaSet", "Namespace", "Pod", "Service", "Event", *config_kinds.KINDS)

_SCALARS: dict[str, JsonDict] = {
    "str": {"type": "string"},
    "int32": {"type": "integer", "format": "int32"},
    "int64": {"type": "integer", "format": "int64"},
    "bool": {"type": "boolean"},
    "obj": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    "map": {"type": "object", "additionalProperties": {"type": "string", "default": ""}},
}
_NAMED_SCALARS = {
    "time": f"{_META}.Time",
    "ios": "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
    "qty": "io.k8s.apimachinery.pkg.api.resource.Quantity",
}


def _full_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for package, types in _TYPES.items():
        for short in types:
            assert short not in names, f"duplicate short type name {short}"
            names[short] = f"{package}.{short}"
    return names


_FULL = _full_names()


def _ref(name: str) -> JsonDict:
    return {"$ref": f"#/components/schemas/{name}"}


def _type(spec: str) -> JsonDict:
    """One field's schema from the little language above."""
    if spec in _SCALARS:
        return dict(_SCALARS[spec])
    if spec in _NAMED_SCALARS:
        return {"allOf": [_ref(_NAMED_SCALARS[spec])]}
    if spec.startswith("map:"):
        return {"type": "object", "additionalProperties": _type(spec.removeprefix("map:"))}
    if spec.startswith("["):
        inner, _, rest = spec[1:].partition("]")
        schema: JsonDict = {"type": "array", "items": _type(inner)}
        if rest == "set":
            schema |= {"x-kubernetes-list-type": "set", "x-kubernetes-patch-strategy": "merge"}
        elif rest.startswith("@"):
            key, _, retain = rest[1:].partition("+")
            schema |= {
                "x-kubernetes-list-map-keys": [key],
                "x-kubernetes-list-type": "map",
                "x-kubernetes-patch-merge-key": key,
                "x-kubernetes-patch-strategy": "merge,retainKeys" if retain else "merge",
            }
        else:
            schema["x-kubernetes-list-type"] = "atomic"
        return schema
    name, _, retain = spec.partition("+")
    schema = {"allOf": [_ref(_FULL[name])], "default": {}}
    if retain:
        schema["x-kubernetes-patch-strategy"] = "retainKeys"
    return schema


def _object(fields: Mapping[str, str]) -> JsonDict:
    properties, required = {}, []
    for field, spec in fields.items():
        if spec.endswith("!"):
            required.append(field)
            spec = spec[:-1]
        properties[field] = _type(spec)
    schema: JsonDict = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def _gvk(group: str, version: str, kind: str) -> list[JsonDict]:
    return [{"group": group, "kind": kind, "version": version}]


@cache
def components() -> dict[str, JsonDict]:
    """Every schema the emulator knows, keyed by its Kubernetes definition name."""
    schemas: dict[str, JsonDict] = {}
    for package, types in _TYPES.items():
        for short, fields in types.items():
            schemas[f"{package}.{short}"] = _object(fields)
    for name, (group, version, kind) in _KINDS.items():
        schemas[name]["x-kubernetes-group-version-kind"] = _gvk(group, version, kind)
        if kind in _LISTED:
            schemas[f"{name}List"] = {
                "type": "object",
                "required": ["items"],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "items": {"type": "array", "items": {"allOf": [_ref(name)], "default": {}}},
                    "kind": {"type": "string"},
                    "metadata": {"allOf": [_ref(f"{_META}.ListMeta")], "default": {}},
                },
                "x-kubernetes-group-version-kind": _gvk(group, version, f"{kind}List"),
            }
    schemas[f"{_META}.Time"] = {"type": "string", "format": "date-time"}
    schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {"type": "string", "format": "int-or-string"}
    schemas["io.k8s.apimachinery.pkg.api.resource.Quantity"] = {"type": "string"}
    schemas[f"{_META}.Patch"] = {"type": "object", "description": "The body of a PATCH request."}
    schemas[f"{_META}.ObjectMeta"]["properties"]["ownerReferences"]["x-kubernetes-list-map-keys"] = ["uid"]
    schemas[f"{_META}.LabelSelector"]["x-kubernetes-map-type"] = "atomic"
    schemas[f"{_CORE}.ServiceSpec"]["properties"]["ports"]["x-kubernetes-list-map-keys"] = [
        "port",
        "protocol",
    ]
    schemas[f"{_CORE}.Container"]["properties"]["ports"]["x-kubernetes-list-map-keys"] = [
        "containerPort",
        "protocol",
    ]
    return schemas


def _component_of(rt: ResourceType) -> str:
    package = {"apps/v1": _APPS, "v1": _CORE, f"{RBAC}/v1": _RBAC}[rt.group_version]
    return f"{package}.{rt.kind}"


PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
_WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")
_LIST_PARAMS = (
    "allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit", "resourceVersion",
    "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch",
)  # fmt: skip


def _query(*names: str) -> list[JsonDict]:
    kinds = {"limit": "integer", "timeoutSeconds": "integer", "watch": "boolean",
    "allowWatchBookmarks": "boolean",
             "sendInitialEvents": "boolean", "force": "boolean", "gracePeriodSeconds": "integer"}  # fmt: skip
    return [
        {"name": n, "in": "query", "schema": {"type": kinds.get(n, "string"), "uniqueItems": True}}
        for n in names
    ]


def _path_params(*names: str) -> list[JsonDict]:
    return [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string", "uniqueItems": True}}
        for n in names
    ]


def _operation(
    action: str,
    gvk: tuple[str, str, str],
    response: str,
    *,
    body: str | None = None,
    params: tuple[str, ...] = (),
) -> JsonDict:
    op: JsonDict = {
        "parameters": _query(*params),
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": _ref(response)}},
            },
            "401": {"description": "Unauthorized"},
        },
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": gvk[0], "kind": gvk[2], "version": gvk[1]},
    }
    if body is not None:
        types = PATCH_TYPES if action == "patch" else ("*/*",)
        op["requestBody"] = {"content": {t: {"schema": _ref(body)} for t in types}, "required": True}
    return op


def _paths(rt: ResourceType) -> Iterator[tuple[str, JsonDict]]:
    prefix = f"/api/{rt.version}" if not rt.group else f"/apis/{rt.group_version}"
    gvk = (rt.group, rt.version, rt.kind)
    kind, kind_list = _component_of(rt), f"{_component_of(rt)}List"
    status, delete_options, patch = f"{_META}.Status", f"{_META}.DeleteOptions", f"{_META}.Patch"
    collection = (
        f"{prefix}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{prefix}/{rt.plural}"
    )
    scope_params = ("namespace",) if rt.namespaced else ()
    yield (
        collection,
        {
            "get": _operation("list", gvk, kind_list, params=_LIST_PARAMS),
            "post": _operation("post", gvk, kind, body=kind, params=_WRITE_PARAMS),
            "delete": _operation("deletecollection", gvk, status, body=delete_options, params=_LIST_PARAMS),
            "parameters": _path_params(*scope_params),
        },
    )
    yield (
        f"{collection}/{{name}}",
        {
            "get": _operation("get", gvk, kind),
            "put": _operation("put", gvk, kind, body=kind, params=_WRITE_PARAMS),
            "patch": _operation("patch", gvk, kind, body=patch, params=(*_WRITE_PARAMS, "force")),
            "delete": _operation(
                "delete", gvk, status, body=delete_options, params=("dryRun", "gracePeriodSeconds")
            ),
            "parameters": _path_params(*scope_params, "name"),
        },
    )
    for sub in rt.subresources:
        body = f"{_AUTOSCALING}.Scale" if sub.name == "scale" else kind
        sub_gvk = (sub.group, sub.version, sub.kind) if sub.name == "scale" else gvk
        yield (
            f"{collection}/{{name}}/{sub.name}",
            {
                "get": _operation("get", sub_gvk, body),
                "put": _operation("put", sub_gvk, body, body=body, params=_WRITE_PARAMS),
                "patch": _operation("patch", sub_gvk, body, body=patch, params=(*_WRITE_PARAMS, "force")),
                "parameters": _path_params(*scope_params, "name"),
            },
        )
    if rt.namespaced:
        yield f"{prefix}/{rt.plural}", {"get": _operation("list", gvk, kind_list, params=_LIST_PARAMS)}


def _reachable(roots: list[str], schemas: Mapping[str, JsonDict]) -> dict[str, JsonDict]:
    seen: dict[str, JsonDict] = {}
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen or name not in schemas:
            continue
        seen[name] = schemas[name]
        todo.extend(_refs(schemas[name]))
    return dict(sorted(seen.items()))


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value.removeprefix("#/components/schemas/")
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


@cache
def document(group_version: str) -> bytes:
    """The OpenAPI v3 document of one group-version, serialized once."""
    paths = dict(p for rt in resources_of(group_version) for p in _paths(rt))
    doc = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.37.0"},
        "paths": paths,
        "components": {"schemas": _reachable(list(_refs(paths)), components())},
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def index() -> JsonDict:
    """``GET /openapi/v3``: where each group-version's document lives (with a content hash)."""
    paths = {}
    for gv in GROUP_VERSIONS:
        path = f"api/{gv}" if "/" not in gv else f"apis/{gv}"
        digest = hashlib.sha512(document(gv)).hexdigest()[:128].upper()
        paths[path] = {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest}"}
    return {"paths": paths}


def document_for_path(path: str) -> bytes | None:
    """The document served at ``/openapi/v3/<path>``, e.g. ``apis/apps/v1``."""
    for gv in GROUP_VERSIONS:
        if path == (f"api/{gv}" if "/" not in gv else f"apis/{gv}"):
            return document(gv)
    return None


class SchemaPatchMeta:
    """``PatchMeta`` read from the OpenAPI components, as kubectl's ``PatchMetaFromOpenAPIV3`` does."""

    def __init__(self, schema: JsonDict | None):
        self._schema = _resolve(schema)

    def field(self, name: str) -> FieldMeta:
        if self._schema is None:
            return FieldMeta(NO_META)
        prop = (self._schema.get("properties") or {}).get(name)
        if prop is None:
            extra = self._schema.get("additionalProperties")
            return FieldMeta(SchemaPatchMeta(extra) if isinstance(extra, dict) else NO_META)
        strategy = frozenset(s for s in str(prop.get("x-kubernetes-patch-strategy", "")).split(",") if s)
        value = prop.get("items") if prop.get("type") == "array" else prop
        return FieldMeta(SchemaPatchMeta(value), strategy, prop.get("x-kubernetes-patch-merge-key"))


def _resolve(schema: JsonDict | None) -> JsonDict | None:
    while schema is not None:
        if schema.get("allOf"):
            schema = schema["allOf"][0]
        elif "$ref" in schema:
            schema = components().get(str(schema["$ref"]).removeprefix("#/components/schemas/"))
        else:
            return schema
    return None


def patch_meta(rt: ResourceType, subresource: str | None = None) -> PatchMeta:
    """The patch metadata of a kind's body (or of ``Scale`` for the scale subresource)."""
    name = f"{_AUTOSCALING}.Scale" if subresource == "scale" else _component_of(rt)
    return SchemaPatchMeta(components().get(name))


def unknown_fields(rt: ResourceType, obj: JsonDict) -> list[str]:
    """Paths of fields the schema does not declare, e.g. ``spec.template.spec.containers[0].imagee``.

    The emulator only warns about them (``Warning: unknown field …``) even when kubectl asks for
    strict validation: a field newer than this table must not make a valid manifest fail.
    """
    found: list[str] = []
    _walk(components().get(_component_of(rt)), obj, "", found)
    return found


def _walk(schema: JsonDict | None, value: Any, path: str, found: list[str]) -> None:
    schema = _resolve(schema)
    if schema is None or schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, list) and schema.get("type") == "array":
        for i, item in enumerate(value):
            _walk(schema.get("items"), item, f"{path}[{i}]", found)
    elif isinstance(value, dict) and schema.get("type") == "object":
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if properties is not None and key in properties:
                _walk(properties[key], item, where, found)
            elif isinstance(extra, dict):
                _walk(extra, item, where, found)
            elif properties is not None and key not in ("apiVersion", "kind"):
                found.append(where)
