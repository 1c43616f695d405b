"""Prometheus remote-write client for tests: push exact samples into a real Prometheus.

Encodes ``prometheus.WriteRequest`` with protobuf descriptors built at runtime (no protoc) and
compresses it with raw snappy, as the remote-write protocol requires. Backdated samples on a fresh
series are queryable at once, which is the quickest exact way to make "the 5xx ratio is now 20 %" true.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cramjam
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory


def _build_write_request_class() -> Any:
    fdp = descriptor_pb2.FileDescriptorProto(name="shipthread_remote.proto", package="prometheus")
    F = descriptor_pb2.FieldDescriptorProto

    def msg(name: str, fields: Sequence[tuple[str, int, int, int, str | None]]) -> None:
        m = fdp.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            f = m.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                f.type_name = type_name

    msg(
        "Label",
        [
            ("name", 1, F.TYPE_STRING, F.LABEL_OPTIONAL, None),
            ("value", 2, F.TYPE_STRING, F.LABEL_OPTIONAL, None),
        ],
    )
    msg(
        "Sample",
        [
            ("value", 1, F.TYPE_DOUBLE, F.LABEL_OPTIONAL, None),
            ("timestamp", 2, F.TYPE_INT64, F.LABEL_OPTIONAL, None),
        ],
    )
    msg(
        "TimeSeries",
        [
            ("labels", 1, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".prometheus.Label"),
            ("samples", 2, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".prometheus.Sample"),
        ],
    )
    msg("WriteRequest", [("timeseries", 1, F.TYPE_MESSAGE, F.LABEL_REPEATED, ".prometheus.TimeSeries")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("prometheus.WriteRequest"))


_WriteRequest = _build_write_request_class()


@dataclass
class Series:
    """One series: its labels (``__name__`` included) and its (timestamp ms, value) samples."""

    labels: Mapping[str, str]
    samples: list[tuple[int, float]] = field(default_factory=list)


def encode(series: Iterable[Series]) -> bytes:
    """The snappy-compressed protobuf body of a remote-write request."""
    req = _WriteRequest()
    for s in series:
        ts = req.timeseries.add()
        for name in sorted(s.labels):  # remote write wants labels sorted by name
            ts.labels.add(name=name, value=s.labels[name])
        for t_ms, value in sorted(s.samples):
            ts.samples.add(value=value, timestamp=t_ms)
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))


def push(base_url: str, series: Iterable[Series], timeout: float = 5.0) -> None:
    """POST the series to ``/api/v1/write``; raises on any answer but 2xx."""
    body = encode(series)
    request = urllib.request.Request(
        f"{base_url}/api/v1/write",
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/x-protobuf",
            "Content-Encoding": "snappy",
            "X-Prometheus-Remote-Write-Version": "0.1.0",
        },
    )
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        if resp.status // 100 != 2:
            raise RuntimeError(f"remote write answered {resp.status}")
