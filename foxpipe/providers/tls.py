"""One TLS context per HTTP library, made once per process and shared by every client.

An HTTP client built with its library's defaults makes a new ``ssl.SSLContext`` and loads the
system's certificate authorities into it: about 20 ms of CPU each time. The app makes clients
often (a text client per story call, a client per event loop for images and checks, one per
narrated line, one per video vendor), so each library's default context is made once here and
passed to its clients as ``verify=``. The contexts are the libraries' own defaults (the same
certificates, ``SSL_CERT_FILE``/``SSL_CERT_DIR`` honoured as the library honours them), never
changed after they are made, so sharing them between threads and event loops is safe.
"""

from __future__ import annotations

import functools
import ssl


@functools.cache
def openai_context() -> ssl.SSLContext:
    """The context the ``openai`` SDK's HTTP library (``httpx2``) makes by default."""
    import httpx2

    return httpx2.create_ssl_context()


@functools.cache
def httpx_context() -> ssl.SSLContext:
    """The context ``httpx`` makes by default (the Kling and MiniMax clients)."""
    import httpx

    return httpx.create_ssl_context()
