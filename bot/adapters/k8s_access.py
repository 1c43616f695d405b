"""How Shipthread reaches one Kubernetes API server, and what its failures mean to us.

The kubernetes client is synchronous and slow to import, so it is imported here once, and every
call runs on the adapter's bounded thread pool with a timeout. Objects travel as the plain JSON the
API server sent: a rollback must copy a pod template back exactly as ``kubectl rollout undo`` does,
and a round trip through the client's typed models could drop or reshape fields it does not know.
So the few requests are made through the client's own plumbing (``ApiClient.param_serialize`` and
``call_api``: its auth, TLS, host and REST layer), never through its generated API classes, whose
pydantic models are ~0.6 s of imports (a third of a cold start) for typing we throw away. Every
``ApiException`` and transport error is translated here into ``bot.errors``, with a message that
names the object, the namespace and the cluster.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from bot.adapters.blocking import BlockingRunner
from bot.adapters.http_errors import error_class, error_for_status
from bot.adapters.retrying import untrusted_certificate
from bot.errors import ConfigError, Conflict, NotFound, PermanentError, ShipthreadError, TransientError

log = logging.getLogger("shipthread.kubernetes")

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ClusterAccess:
    """Where one cluster's API server is and how to authenticate to it.

    Either ``server`` (an API URL, e.g. an emulator's, with an optional bearer ``token`` taken from
    the environment), or a kubeconfig ``context`` (in ``kubeconfig``, default ``$KUBECONFIG`` /
    ``~/.kube/config``), or ``in_cluster`` (the bot's own service account when it runs in a pod).
    """

    context: str | None = None
    server: str | None = None
    kubeconfig: str | None = None
    token: str | None = field(default=None, repr=False)
    """A bearer token; never logged (``repr`` leaves it out)."""
    verify_tls: bool = True
    ca_file: str | None = None
    """CA bundle for ``server`` when it is not signed by a public CA."""
    in_cluster: bool = False

    def describe(self) -> str:
        """Where the cluster is, for error messages (never the token)."""
        if self.server:
            return self.server
        if self.in_cluster:
            return "in-cluster service account"
        return f"kubeconfig context {self.context or '(current)'}"


Kind = Literal["Deployment", "Service"]
"""The kinds the adapter reads and writes by name (ReplicaSets are only listed)."""


@dataclass(frozen=True, slots=True)
class Ref:
    """One named object in one namespace of one cluster."""

    cluster: str
    kind: Kind
    namespace: str
    name: str

    def describe(self) -> str:
        return f"{self.local()} of cluster {self.cluster}"

    def local(self) -> str:
        """The object within its cluster, for messages that name the cluster already."""
        return f"{self.kind} {self.name} in namespace {self.namespace}"

    def named(self, name: str, kind: Kind | None = None) -> Ref:
        return Ref(self.cluster, kind or self.kind, self.namespace, name)


def load_api_classes() -> None:
    """Import what the client loads lazily on first use (its ``ApiClient`` and REST layer; not its
    API classes, see the module docstring), off the event loop: the adapter calls this in a thread."""
    k8s.ApiClient.__name__  # noqa: B018 -- the attribute access is the import


_DEPLOYMENTS = "/apis/apps/v1/namespaces/{namespace}/deployments"
_PATHS = {"Deployment": _DEPLOYMENTS + "/{name}", "Service": "/api/v1/namespaces/{namespace}/services/{name}"}
_REPLICA_SETS = "/apis/apps/v1/namespaces/{namespace}/replicasets"
_STRATEGIC_MERGE = "application/strategic-merge-patch+json"
_JSON_PATCH = "application/json-patch+json"


def build_client(name: str, access: ClusterAccess) -> k8s.ApiClient:
    """One ApiClient for one cluster. Blocking (reads files, may run an exec plugin): call in a thread.

    For a context this is ``kubernetes.config.new_client_from_config`` spelt out, so that our own
    settings (no urllib3 retries, the TLS choice, a token from the environment) are applied to the
    configuration before the client is built from it.
    """
    configuration = k8s.Configuration()
    # Retries are ours (tenacity, bounded and logged); urllib3's own would multiply every timeout.
    configuration.retries = 0
    try:
        if access.server:
            configuration.host = access.server.rstrip("/")
        elif access.in_cluster:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=access.kubeconfig,
                context=access.context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (ConfigException, OSError, ValueError) as exc:
        raise ConfigError(f"cannot configure access to cluster {name} ({access.describe()}): {exc}") from exc
    if not access.verify_tls:
        configuration.verify_ssl = False
    if access.ca_file:
        configuration.ssl_ca_cert = access.ca_file
    if access.token:
        configuration.refresh_api_key_hook = None  # else the kubeconfig's token comes back on every call
        configuration.api_key = {"BearerToken": access.token}
        configuration.api_key_prefix = {"BearerToken": "Bearer"}
    return k8s.ApiClient(configuration)


class ClusterApi:
    """The handful of API calls the adapter makes on one cluster, as plain JSON, errors translated."""

    def __init__(self, name: str, access: ClusterAccess, runner: BlockingRunner, timeout_s: float) -> None:
        self.name = name
        self.access = access
        self._runner = runner
        self._timeout = timeout_s
        self._client: k8s.ApiClient | None = None
        self._lock = asyncio.Lock()

    async def _connect(self) -> None:
        async with self._lock:
            if self._client is None:
                self._client = await self._runner.run(build_client, self.name, self.access)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()  # type: ignore[no-untyped-call]
            self._client = None

    async def get(self, ref: Ref) -> Json:
        await self._connect()
        return await self._call(ref, self._request, "GET", _PATHS[ref.kind], _where(ref))

    async def find(self, ref: Ref) -> Json | None:
        """The object, or None when it does not exist."""
        try:
            return await self.get(ref)
        except NotFound:
            return None

    async def patch(self, ref: Ref, body: Json | list[Json]) -> Json:
        """A dict body is a strategic merge patch, a list body a JSON patch (the client's own rule)."""
        await self._connect()
        kind = _JSON_PATCH if isinstance(body, list) else _STRATEGIC_MERGE
        return await self._call(ref, self._request, "PATCH", _PATHS[ref.kind], _where(ref), body, kind)

    async def create_deployment(self, ref: Ref, body: Json) -> Json:
        """Create ``body`` exactly as given. The client's ``create_namespaced_deployment`` only takes
        its typed model, which drops (or, given a dict, refuses) every field it does not know, so a
        copy of a pod template from a cluster newer than the client would lose fields on the way."""
        await self._connect()
        return await self._call(ref, self._request, "POST", _DEPLOYMENTS, {"namespace": ref.namespace}, body)

    def _request(
        self,
        method: str,
        path: str,
        path_params: dict[str, str],
        body: Json | list[Json] | None = None,
        content_type: str = "application/json",
        query: list[tuple[str, str]] | None = None,
        *,
        _request_timeout: float,
        _preload_content: bool,
    ) -> Any:
        """One request through the client's own plumbing (auth, TLS, host), as its API methods make it
        with ``_preload_content=False``: the raw response, or ``ApiException`` for a non-2xx status."""
        assert self._client is not None
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        request = self._client.param_serialize(
            method,
            path,
            path_params=path_params,
            query_params=query,
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self._client.call_api(*request, _request_timeout=_request_timeout)
        if not 200 <= response.status <= 299:
            response.read()  # type: ignore[no-untyped-call]
            raise ApiException.from_response(http_resp=response, body=None, data=None)
        return response.response

    async def replica_sets(self, ref: Ref, selector: str) -> list[Json]:
        """The ReplicaSets of ``ref``'s namespace matching the label ``selector``."""
        await self._connect()
        query = [("labelSelector", selector)]
        listed = await self._call(
            ref, self._request, "GET", _REPLICA_SETS, {"namespace": ref.namespace}, query=query
        )
        return list(listed.get("items") or [])

    async def _call(self, ref: Ref, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Json:
        try:
            return await self._runner.run(self._raw, fn, *args, **kwargs)
        except ApiException as exc:
            raise translate(exc, ref) from exc
        except (urllib3.exceptions.HTTPError, TimeoutError, ConnectionError) as exc:
            certificate = untrusted_certificate(exc)
            if certificate is not None:
                raise PermanentError(
                    f"cannot talk to cluster {self.name} ({self.access.describe()}) about {ref.local()}: "
                    f"its TLS certificate is not trusted ({certificate.verify_message}); set the "
                    f"cluster's CA file or fix the certificate"
                ) from exc
            raise TransientError(
                f"cluster {self.name} ({self.access.describe()}) did not answer about {ref.local()} "
                f"(timeout {self._timeout:g}s): {_transport_reason(exc)}",
                retry_in=1.0,
            ) from exc
        except ShipthreadError:
            raise
        except ValueError as exc:  # an answer that is not JSON, or a body the client refused
            raise PermanentError(
                f"cluster {self.name}: unreadable exchange for {ref.describe()}: {exc}"
            ) from exc

    def _raw(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Json:
        response = fn(*args, _request_timeout=self._timeout, _preload_content=False, **kwargs)
        try:
            data = response.data
        finally:
            response.release_conn()
        return cast(Json, json.loads(data))


def _where(ref: Ref) -> dict[str, str]:
    return {"namespace": ref.namespace, "name": ref.name}


def translate(exc: ApiException, ref: Ref) -> ShipthreadError:
    """An API error as one of ours: what retrying can fix, and what it cannot."""
    status = int(exc.status or 0)
    where = ref.local()
    if status == 0:  # the client's own wrapping of a TLS failure: a certificate will not fix itself
        return PermanentError(f"cannot talk to cluster {ref.cluster} about {where}: {exc.reason}")
    message = _status_message(exc)
    kind = error_class(status)
    if kind is NotFound:
        text = f"{ref.kind} {ref.name} not found in namespace {ref.namespace} of cluster {ref.cluster}"
    elif kind is Conflict:
        text = f"{ref.describe()} was changed by someone else while Shipthread updated it: {message}"
    elif kind is TransientError:
        text = f"cluster {ref.cluster} answered {status} for {where}: {message}"
    elif status in (401, 403):
        text = f"cluster {ref.cluster} refused Shipthread access to {where} ({status}): {message}"
    else:
        text = f"cluster {ref.cluster} refused the request about {where} ({status}): {message}"
    return error_for_status(status, text, (exc.headers or {}).get("Retry-After"))


def _status_message(exc: ApiException) -> str:
    """The ``message`` of the server's Status body, else the HTTP reason."""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if body:
        try:
            parsed = json.loads(body)
        except ValueError:
            return str(body)[:300]
        if isinstance(parsed, dict) and parsed.get("message"):
            return str(parsed["message"])[:500]
    return str(exc.reason or "no reason given")


def _transport_reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)  # MaxRetryError wraps the real cause
    inner = reason if isinstance(reason, BaseException) else exc
    text = _NOISE.sub("", str(inner))  # the host, port and timeout are in the message already
    return f"{type(inner).__name__}: {text}"[:300]


_NOISE = re.compile(r"^HTTPS?Connection(Pool)?\(host=[^)]*\):\s*|\s*\(read timeout=[^)]*\)")
