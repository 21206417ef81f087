"""Load benchmark: N concurrent browser sessions each make a 20-image story.

Starts `streamlit run` on loopback with a fresh data folder (pinned to core 0, the browsers to
the other cores, as users' browsers run on their own machines), opens N headless Chromium
tabs (real sessions over the real websocket), and in each: quiz -> story -> approve scenes
-> gallery, which then refreshes itself while the images are made. Reports the Streamlit
process's peak RSS, the gallery fragment's rerun time (median, p95; measured inside the
app through FOXPIPE_PERF_LOG) while everything runs, and how many images finished.

    python benchmarks/load.py                 # 10 sessions, embedded mode
    python benchmarks/load.py --sessions 3    # lighter
    python benchmarks/load.py --openai        # plus one run against the fake OpenAI server

Last line: `peak RSS: N MB; fragment p95: N ms; images: N/M`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
    # every tab refreshes its gallery as a foreground tab would
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(data: Path, env_extra: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI_", "CLOUDINARY", "GOOGLE_", "KLING", "HAILUO", "APP_PASSWORD"))
    }
    env.update(
        {
            "FOXPIPE_DATA_DIR": str(data),
            "FOXPIPE_PERF_LOG": str(data / "perf.log"),
            "FOXPIPE_OFFLINE_DELAY": "0.4",
            **env_extra,
        }
    )
    split = (os.cpu_count() or 1) >= 2
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(ROOT / "streamlit_app.py"),
            "--server.headless",
            "true",
            "--server.address",
            "127.0.0.1",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # The server gets core 0 to itself; the browsers (users' machines in real life) and the
        # fake services share the others, so their rendering is not counted as server time.
        preexec_fn=(lambda: os.sched_setaffinity(0, {0})) if split else None,
    )
    if split:
        os.sched_setaffinity(0, set(range(1, os.cpu_count() or 2)))
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            with urllib.request.urlopen(base + "/_stcore/health", timeout=1) as r:
                if r.read().strip() == b"ok":
                    return proc, base
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the app did not start")


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident set size so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def images_ready(data: Path) -> int:
    total = 0
    for f in (data / "jobs").glob("*.json"):
        try:
            slots = json.loads(f.read_text())["slots"]
        except (OSError, ValueError, KeyError):
            continue
        total += sum(1 for s in slots if s["status"] in ("ready", "approved"))
    return total


def drive_session(browser, base: str, errors: list[str]) -> None:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = ctx.new_page()
    try:
        page.goto(base + "/", wait_until="domcontentloaded")
        page.locator(".st-key-write_story button").click(timeout=60_000)
        page.locator(".st-key-approve_scenes button").click(timeout=60_000)
        page.wait_for_url("**/gallery?job=*", timeout=60_000)
    except Exception as e:  # reported, not fatal: the totals show it
        errors.append(f"{type(e).__name__}: {str(e)[:120]}")
    return ctx


def run(sessions: int, env_extra: dict[str, str], label: str, timeout: float) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        proc, base = start_app(data, env_extra)
        peak = 0.0
        stop = threading.Event()

        def watch() -> None:
            nonlocal peak
            while not stop.is_set():
                try:
                    peak = max(peak, peak_rss_mb(proc.pid))
                except OSError:
                    return
                time.sleep(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        errors: list[str] = []
        expected = sessions * 20
        t0 = time.monotonic()
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
                )
                contexts = [drive_session(browser, base, errors) for _ in range(sessions)]
                deadline = time.monotonic() + timeout
                while images_ready(data) < expected and time.monotonic() < deadline:
                    time.sleep(0.5)
                # Keep the galleries open a moment after the last image, as users would.
                time.sleep(2)
                for c in contexts:
                    c.close()
                browser.close()
        finally:
            elapsed = time.monotonic() - t0
            stop.set()
            watcher.join()
            proc.terminate()
            proc.wait(15)
        done = images_ready(data)
        perf = data / "perf.log"
        times = (
            [float(line.split()[1]) for line in perf.read_text().splitlines()]
            if perf.exists()
            else []
        )
    p95 = (
        statistics.quantiles(times, n=20)[-1]
        if len(times) >= 20
        else (max(times) if times else 0.0)
    )
    med = statistics.median(times) if times else 0.0
    print(
        f"{label}: {sessions} sessions, {done}/{expected} images in {elapsed:.1f} s; "
        f"peak RSS {peak:.0f} MB; fragment reruns {len(times)}, median {med:.1f} ms, p95 {p95:.1f} ms"
    )
    for e in errors:
        print(f"  session error: {e}")
    return {"peak": peak, "p95": p95, "median": med, "done": done, "expected": expected}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument(
        "--openai", action="store_true", help="also run once against the fake OpenAI server"
    )
    ap.add_argument("--timeout", type=float, default=180)
    args = ap.parse_args()
    results = [run(args.sessions, {}, "embedded", args.timeout)]
    if args.openai:
        from tests.fakes.openai_server import FakeOpenAI

        with FakeOpenAI() as fake:
            env = {
                "OPENAI_API_KEY": "sk-bench-key",
                "OPENAI_BASE_URL": fake.base_url,
                "IMAGES_PER_MINUTE": "600",
                "OPENAI_USE_REFERENCE": "false",
            }
            results.append(run(1, env, "fake OpenAI", args.timeout))
    peak = max(r["peak"] for r in results)
    p95 = max(r["p95"] for r in results)
    done = sum(r["done"] for r in results)
    expected = sum(r["expected"] for r in results)
    print(f"peak RSS: {peak:.0f} MB; fragment p95: {p95:.0f} ms; images: {done}/{expected}")


if __name__ == "__main__":
    main()
