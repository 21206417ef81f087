"""The Google Sheets prompt log through real gspread + google-auth, against a loopback fake of
the OAuth token endpoint and the Sheets API (service-account key made here)."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from foxpipe.config import load_settings
from foxpipe.providers.csvlog import CsvLog
from foxpipe.providers.registry import prompt_log
from foxpipe.providers.sheets import HEADERS, SheetsLog, WriteQuota
from tests.fakes.sheets_server import Formula, SheetsServer, make_key, point_gspread_at


@pytest.fixture(scope="session")
def key():
    return make_key()


@pytest.fixture
def fake(key, monkeypatch):
    with SheetsServer(key[1]) as state:
        point_gspread_at(monkeypatch, state.base)
        yield state


@pytest.fixture
def make_log(fake, key, clean_env):
    logs: list[SheetsLog] = []

    def make(**kw) -> SheetsLog:
        kw.setdefault("flush_interval", 0.05)
        kw.setdefault("backoff_base", 0.01)
        kw.setdefault("timeout", 5.0)
        sa = kw.pop("service_account", None) or fake.service_account(key[0])
        lg = SheetsLog(kw.pop("sheet_id", fake.sheet_id), sa, clean_env, **kw)
        logs.append(lg)
        return lg

    yield make
    for lg in logs:
        lg.close(5)


def image(scene: int, status: str = "ready", prompt: str = "A fox in a forest") -> dict:
    return {
        "time": "2026-11-24 10:00:00",
        "story_id": "story1",
        "job_id": "job1",
        "scene": scene,
        "scene_text": f"Scene {scene} text",
        "prompt": prompt,
        "model": "gpt-image-2",
        "image_url": f"https://res.example/scene_{scene}.png",
        "status": status,
        "attempts": 1,
        "seconds": 12.5,
        "cost_usd": 0.05,
        "path": "generate",
    }


def story(title: str = "Rusty rises") -> dict:
    return {
        "time": "2026-11-24 10:00:00",
        "story_id": "story1",
        "job_id": "job1",
        "title": title,
        "answers": '{"animal": "fox"}',
        "character_sheet": "A small red fox",
    }


def data_rows(fake, tab: str) -> list[list]:
    rows = fake.rows(tab)
    assert rows and rows[0] == HEADERS[tab], "header row first"
    return rows[1:]


def test_rows_are_written_raw_with_headers(fake, make_log, clean_env):
    lg = make_log()
    lg.log_story(story('=IMPORTXML("x")'))
    lg.log_image(image(1, prompt='=HYPERLINK("http://evil")'))
    lg.log_image(image(2, prompt="+1 fox"))
    assert lg.flush(10)
    stories = data_rows(fake, "stories")
    assert stories == [
        [
            "2026-11-24 10:00:00",
            "story1",
            "job1",
            '=IMPORTXML("x")',
            '{"animal": "fox"}',
            "A small red fox",
        ]
    ]
    images = data_rows(fake, "images")
    assert [r[3] for r in images] == [1, 2]  # numbers stay numbers
    assert images[0][5] == '=HYPERLINK("http://evil")' and not any(
        isinstance(c, Formula) for r in images for c in r
    )
    assert {w.value_input for w in fake.writes if w.kind == "append"} == {"RAW"}
    # The local CSV keeps every row too, marked as delivered.
    assert set(CsvLog(clean_env).read("images")["marker"]) == {"sheet"}
    assert lg.state == "live" and lg.problem == ""


def test_existing_worksheets_are_reused_and_headed_once(fake, make_log):
    fake.tabs.update({"stories": [HEADERS["stories"], ["old row"]], "images": []})
    lg = make_log()
    lg.log_image(image(1))
    assert lg.flush(10)
    assert fake.rows("stories") == [HEADERS["stories"], ["old row"]]
    assert fake.rows("images")[0] == HEADERS["images"] and len(fake.rows("images")) == 2
    assert not any(w.kind == "batchUpdate" for w in fake.writes)


def test_batching_many_rows_in_few_writes(fake, make_log):
    lg = make_log(flush_interval=3600)  # only explicit flushes send
    lg.flush(10)  # connected, worksheets made
    before = len(fake.writes)
    threads = [
        threading.Thread(target=lambda k=k: [lg.log_image(image(k * 30 + i)) for i in range(30)])
        for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lg.log_story(story())
    assert lg.flush(10)
    appends = [w for w in fake.writes[before:] if w.kind == "append"]
    assert len(appends) == 2  # one per worksheet
    assert sorted(r[3] for r in data_rows(fake, "images")) == list(range(120))


class VirtualClock:
    """Time that only moves when someone sleeps: quota checks without waiting a minute."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.lock = threading.Lock()

    def now(self) -> float:
        with self.lock:
            return self.t

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.t += max(0.0, seconds)


def max_in_window(times: list[float], window: float = 60.0) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while (
            t >= times[j] + window
        ):  # the quota's own test: a write at the deadline starts a new window
            j += 1
        best = max(best, i - j + 1)
    return best


def test_sixty_image_story_stays_under_the_write_quota(fake, make_log):
    clock = VirtualClock()
    fake.clock = clock.now
    lg = make_log(flush_interval=5.0, writes_per_minute=50, clock=clock.now, sleep=clock.sleep)
    fake.fail_writes(429, 429)  # quota errors on the way, retried
    lg.log_story(story())
    # Worst case: every image row is flushed on its own (ready, then approved, for 60 images).
    for n in range(1, 61):
        lg.log_image(image(n))
        assert lg.flush(
            60
        )  # returns as soon as the flush completes; the bound is for a stuck thread
    for n in range(1, 61):
        lg.log_image(image(n, "approved"))
        assert lg.flush(
            60
        )  # returns as soon as the flush completes; the bound is for a stuck thread
    writes = [w.at for w in fake.writes]
    assert len(writes) >= 120
    assert max_in_window(writes) <= 50 < 60  # every write, headers and sheet creation included
    seen = Counter((r[3], r[8]) for r in data_rows(fake, "images"))
    assert set(seen.values()) == {1} and len(seen) == 120


def test_write_quota_unit():
    clock = VirtualClock()
    q = WriteQuota(5, 60.0, clock.now, clock.sleep)
    stamps = []
    for _ in range(23):
        q.acquire()
        stamps.append(clock.now())
    assert max_in_window(stamps) == 5
    assert clock.now() - 1000.0 >= 4 * 60  # 23 writes at 5/min need four more windows


def test_write_quota_wait_that_rounds_short_still_ends():
    # 2052.612 + (60 - (2052.612 - 2003.597)) is 2063.5969999999998, a hair under the first
    # write's 60 s: the quota must still let the next write through, not wait ~1e-13 s for ever.
    clock = VirtualClock()
    clock.t = 2003.597
    q = WriteQuota(1, 60.0, clock.now, clock.sleep)
    q.acquire()
    clock.t = 2052.612
    done = threading.Event()
    t = threading.Thread(target=lambda: (q.acquire(), done.set()), daemon=True)
    t.start()
    assert done.wait(10), "the quota wait never ended"
    assert clock.now() - 2003.597 >= 60.0 - 1e-9


def test_outage_then_recovery_loses_and_duplicates_nothing(fake, make_log, clean_env):
    lg = make_log(retries=2)
    lg.log_image(image(1))
    assert lg.flush(10)
    fake.down = 503
    for n in range(2, 12):
        lg.log_image(image(n))
    lg.log_story(story())
    assert lg.flush(10)
    markers = CsvLog(clean_env).read("images")["marker"].tolist()
    assert markers == ["sheet"] + ["NoSheet_503"] * 10
    assert lg.state == "unavailable" and "unreachable" in lg.problem
    assert [r[3] for r in data_rows(fake, "images")] == [1]
    fake.down = 0
    lg.log_image(image(12))
    assert lg.flush(10)
    assert [r[3] for r in data_rows(fake, "images")] == list(range(1, 13))  # in order, once each
    assert len(data_rows(fake, "stories")) == 1
    assert set(CsvLog(clean_env).read("images")["marker"]) == {"sheet"}
    assert lg.state == "live" and lg.problem == ""
    assert lg.flush(10)
    assert len(data_rows(fake, "images")) == 12  # a later flush sends nothing again


def test_scripted_500s_within_the_retries_deliver_once(fake, make_log):
    # Only explicit flushes send: a paced background flush started while the rows are being
    # logged would send some of them in a write of its own, before the one checked below.
    lg = make_log(retries=3, flush_interval=3600)
    assert lg.flush(60)  # connected, headers written: the scripted failures below hit the data
    before = len(fake.attempts)
    fake.fail_writes(500, 429, 503)
    for n in range(1, 6):
        lg.log_image(image(n))
    assert lg.flush(60)
    assert [r[3] for r in data_rows(fake, "images")] == [1, 2, 3, 4, 5]
    assert fake.attempts[before:] == [
        ("append", 500),
        ("append", 429),
        ("append", 503),
        ("append", 200),
    ]


def test_a_hanging_api_times_out_and_rows_wait_in_the_csv(fake, make_log, clean_env):
    # 2 s to answer (an ordinary answer on a loaded machine fits); the hang lasts longer.
    lg = make_log(timeout=2.0, retries=0)
    lg.flush(10)
    fake.hang_seconds = 6.0
    fake.fail_writes("hang")
    lg.log_image(image(1))
    assert lg.flush(10)
    assert CsvLog(clean_env).read("images")["marker"].tolist() == ["NoSheet_timeout"]
    lg.log_image(image(2))
    assert lg.flush(10)
    assert [r[3] for r in data_rows(fake, "images")] == [1, 2]


def test_rows_left_by_a_previous_run_are_sent_on_start(fake, key, make_log, clean_env):
    fake.down = 503
    first = make_log(retries=0)
    first.log_image(image(1))
    first.log_image(image(2))
    first.close(5)
    assert [m.startswith("NoSheet_") for m in CsvLog(clean_env).read("images")["marker"]] == [
        True,
        True,
    ]
    fake.down = 0
    second = make_log()
    assert second.flush(10)
    assert [r[3] for r in data_rows(fake, "images")] == [1, 2]


def test_sheet_that_404s_is_reported_and_rows_stay_local(fake, make_log, clean_env):
    lg = make_log(sheet_id="no-such-sheet")
    lg.log_story(story())
    assert lg.flush(10)
    assert lg.state == "unavailable"
    assert (
        "not found (404)" in lg.problem
        and "logger@foxpipe-test.iam.gserviceaccount.com" in lg.problem
    )
    assert CsvLog(clean_env).read("stories")["marker"].tolist() == ["NoSheet_404"]


def test_a_private_key_that_does_not_parse(fake, key, make_log, clean_env):
    sa = dict(
        fake.service_account(key[0]),
        private_key="-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n",
    )
    lg = make_log(service_account=sa)
    lg.log_image(image(1))
    assert lg.flush(10)
    assert "credentials" in lg.problem and "broken" not in lg.problem
    assert CsvLog(clean_env).read("images")["marker"].tolist() == ["NoSheet_key"]


def test_services_share_one_log_per_process(fake, key, clean_env):
    import json

    settings = load_settings(
        {
            "GOOGLE_SHEET_ID": fake.sheet_id,
            "DATA_DIR": str(clean_env),
            "GOOGLE_SERVICE_ACCOUNT": json.dumps(fake.service_account(key[0])),
        }
    )
    assert settings.sheets_live
    a, b = prompt_log(settings), prompt_log(settings)
    assert a is b and a.name == "sheets"
    assert prompt_log(load_settings({"DATA_DIR": str(clean_env)})).name == "csv"
