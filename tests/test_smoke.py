"""Start the real server the way users do and check that it serves the app."""

import os
import subprocess
import sys
import time
import urllib.request

import pytest

from .conftest import APP, ROOT, free_port


@pytest.fixture
def server(clean_env):
    port = free_port()
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", APP, "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        raise AssertionError(proc.stdout.read().decode()[-2000:])
    yield base
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_streamlit_run_serves_the_app(server):
    with urllib.request.urlopen(server + "/", timeout=10) as r:
        assert r.status == 200
        html = r.read().decode()
    assert "<div id=\"root\"" in html or "id=\"root\"" in html
    with urllib.request.urlopen(server + "/_stcore/health", timeout=5) as r:
        assert r.read().strip() == b"ok"
