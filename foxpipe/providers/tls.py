"""One TLS context per HTTP library, made once per process and shared by every client.

An HTTP client built with its library's defaults makes a new ``ssl.SSLContext`` and loads the
certificate authorities into it (certifi's bundle for ``httpx``, the system's for ``httpx2``):
about 25 ms of CPU each time. The app makes clients often (a text client per story call, a
client per event loop for images and checks, one per narrated line, one per video vendor), so
each library's default context is made once here and passed to its clients as ``verify=``.
The contexts are the libraries' own defaults (the same certificates, ``SSL_CERT_FILE`` and
``SSL_CERT_DIR`` honoured as the library honours them, read when the first client is made).
Sharing one between threads and event loops is safe: the only change made to it after this
is the ALPN list the library sets before each connection, the same for every client here
(HTTP/1.1; a client that turned HTTP/2 on would need a context of its own).
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
