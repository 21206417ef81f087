"""Start the real server the way users do (`streamlit run`) and check that it serves the app."""

import urllib.request

import pytest


@pytest.mark.e2e
def test_streamlit_run_serves_the_app(start_app):
    app = start_app()
    with urllib.request.urlopen(app.url + "/", timeout=10) as r:
        assert r.status == 200
        assert 'id="root"' in r.read().decode()
    with urllib.request.urlopen(app.url + "/_stcore/health", timeout=5) as r:
        assert r.read().strip() == b"ok"
