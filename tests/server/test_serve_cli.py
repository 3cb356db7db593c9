"""``acteon serve`` as a real OS process on a free loopback port."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from acteon._cli_common import CliError
from acteon._cli_serve import _bind
from acteon.cli import main


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for_health(url: str, proc: subprocess.Popen[bytes], deadline: float) -> httpx.Response:
    # Polling here only waits for the process to bind its port; no behaviour depends on timing.
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"acteon serve exited with {proc.returncode}: {err.decode()}")
        try:
            return httpx.get(url, timeout=1.0)
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"acteon serve did not answer {url} in time")


def _serve(args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "acteon", "serve", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:  # pragma: no cover - only when shutdown hangs
        proc.kill()
        proc.communicate()


def test_serve_embedded_default_answers_health(tmp_path: Path) -> None:
    port = _free_port()
    proc = _serve(["--port", str(port)], tmp_path)
    try:
        response = _wait_for_health(f"http://127.0.0.1:{port}/health", proc, time.monotonic() + 30)
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
        dispatched = httpx.post(f"http://127.0.0.1:{port}/v1/dispatch", timeout=5, json={
            "namespace": "n", "tenant": "t", "provider": "email", "action_type": "x", "payload": {}})
        # The embedded default has no providers: a business failure, still HTTP 200.
        assert dispatched.status_code == 200 and dispatched.json()["Failed"]["code"] == "PROVIDER_NOT_FOUND"
        audit = httpx.get(f"http://127.0.0.1:{port}/v1/audit", timeout=5).json()
        assert audit["total"] == 1
    finally:
        _stop(proc)
    assert (tmp_path / "acteon-state.db").exists() and (tmp_path / "acteon-audit.db").exists()


def test_serve_reads_host_and_port_from_the_config(tmp_path: Path) -> None:
    args = argparse.Namespace(host=None, port=None)
    assert _bind(args, {}) == ("127.0.0.1", 8080)
    assert _bind(args, {"host": "0.0.0.0", "port": 9000}) == ("0.0.0.0", 9000)
    assert _bind(argparse.Namespace(host="::1", port=81), {"port": 9000}) == ("::1", 81)
    with pytest.raises(CliError, match="port"):
        _bind(args, {"port": "eighty"})


def test_serve_missing_config_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_serve_without_the_server_extra_names_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # makes `import uvicorn` raise ImportError
    assert main(["serve"]) == 1
    assert "needs the 'server' extra: pip install 'acteon[server]'" in capsys.readouterr().err
