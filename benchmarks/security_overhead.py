"""What the protections cost: log redaction per record, Markdown escaping of a scene, the CSV
cell check, and checking a user's scene image (full decode and PNG re-encode).

    python benchmarks/security_overhead.py

Prints microseconds per operation and the ratio of a redacted log record to a plain one."""

from __future__ import annotations

import io
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from foxpipe import safety  # noqa: E402
from foxpipe.uploads import validate_upload  # noqa: E402


def per_call(fn, n: int) -> float:  # noqa: ANN001
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


class Null(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)


def main() -> None:
    log = logging.getLogger("bench.security")
    log.propagate = False
    log.addHandler(Null())
    log.setLevel(logging.INFO)
    n = 20_000
    plain = per_call(
        lambda: log.info("[IMAGE] job %s scene %d failed: %s", "abc123", 5, "server error"), n
    )
    safety.install_log_redaction()
    safety.register_secrets(
        ["bench-key-" + "0123456789abcdef", "cloudinary-secret-xyz", "team password 1"]
    )
    redacted = per_call(
        lambda: log.info("[IMAGE] job %s scene %d failed: %s", "abc123", 5, "server error"), n
    )
    print(f"log record, plain:            {plain:8.1f} µs")
    print(f"log record, redacted (3 keys): {redacted:8.1f} µs  ratio {redacted / plain:.2f}")
    scene = ("The fox runs [through](http://x) the *snowy* forest: :red[fast] & free. " * 16)[:1200]
    print(
        f"escape_markdown, 1 200 chars: {per_call(lambda: safety.escape_markdown(scene), 5_000):8.1f} µs"
    )
    row = ["=HYPERLINK(1)", scene, 3, "plain text", "-2"]
    print(f"csv_row, 5 cells:             {per_call(lambda: safety.csv_row(row), 50_000):8.1f} µs")
    buf = io.BytesIO()
    Image.effect_noise((1536, 1024), 40).convert("RGB").save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    ms = per_call(lambda: validate_upload(data), 5) / 1000
    print(f"validate_upload, 1536×1024 JPEG ({len(data) / 1e6:.1f} MB): {ms:.0f} ms")


if __name__ == "__main__":
    main()
