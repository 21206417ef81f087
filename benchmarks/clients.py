"""CPU to make an HTTP client for OpenAI and for a video vendor, with each library's default TLS
context (made per client: the system's certificate authorities loaded each time) and with the
context the app shares (foxpipe/providers/tls.py). Prints both and the ratio, measured in one run.

    python benchmarks/clients.py [clients]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from openai import AsyncOpenAI, DefaultAsyncHttpxClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from foxpipe.providers import tls  # noqa: E402
from foxpipe.providers.openai import http_client  # noqa: E402


def cpu_ms(make: Callable[[], object], n: int) -> float:
    t0 = time.process_time()
    for _ in range(n):
        make()
    return (time.process_time() - t0) / n * 1000


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    rows = [
        (
            "OpenAI client",
            lambda: AsyncOpenAI(api_key="x", http_client=DefaultAsyncHttpxClient(timeout=10)),
            lambda: AsyncOpenAI(api_key="x", http_client=http_client(10)),
        ),
        (
            "vendor client (httpx)",
            lambda: httpx.AsyncClient(timeout=10),
            lambda: httpx.AsyncClient(timeout=10, verify=tls.httpx_context()),
        ),
    ]
    print(f"{n} clients each; CPU ms per client")
    for name, default, shared in rows:
        a, b = cpu_ms(default, n), cpu_ms(shared, n)
        print(f"{name:24s} default context {a:6.2f}  shared {b:6.2f}  ratio {a / b:5.1f}x")


if __name__ == "__main__":
    main()
