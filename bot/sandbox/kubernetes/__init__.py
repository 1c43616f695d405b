"""An emulator of the Kubernetes API server, good enough for the kubernetes client and kubectl: the face.

Import only from here (``__all__`` below), never from a module inside. The package is split by what
each module holds: ``vocabulary`` (the resources served and the errors answered), ``selector``
(label and field selectors), ``etcd`` (objects, resourceVersions, the watch log), ``admission`` and
``admission_rules`` (defaults and validation), ``patch`` (the three patch formats), ``rollout`` (the
reconcile loop) over ``rollout_base``, ``rollout_pods`` and ``rollout_deployments`` (the Deployment
→ ReplicaSet → Pod controllers on a scaled clock), ``config_kinds`` (ServiceAccounts, ConfigMaps,
Secrets, RBAC), ``discovery``, ``openapi`` over ``openapi_schemas`` (whose field table is the data
file ``openapi_fields.json``) and ``tables`` (what kubectl reads before and after),
``state`` (the emulator's whole state), ``addressing`` (what a request points at), ``resources`` (the
resource API), ``watch``, ``control`` (the ``/_sandbox/`` API) and ``api_server``, which serves all
of it over HTTP (see its docstring for the control API).
"""

from __future__ import annotations

from bot.sandbox.kubernetes.api_server import create_kubernetes_app
from bot.sandbox.kubernetes.state import KubernetesSandbox, kubernetes_sandbox

__all__ = ["KubernetesSandbox", "create_kubernetes_app", "kubernetes_sandbox"]
