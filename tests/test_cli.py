"""``python -m foxpipe check`` in a subprocess: offline with no keys, OpenAI with a key."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from foxpipe.__main__ import COMMANDS, build_parser
from foxpipe.providers.offline import HeroLook, render_card, render_reference
from tests.conftest import ROOT
from tests.fakes.openai_server import Action, FakeOpenAI


def run(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    return subprocess.run(
        [sys.executable, "-m", "foxpipe", *args],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def images(tmp_path):
    ref = tmp_path / "hero.png"
    ref.write_bytes(render_reference("512x768"))
    same = tmp_path / "scene3.png"
    same.write_bytes(render_card(3, "Underdog setup", "Rusty looks up.", "512x768", False, 2))
    grey = tmp_path / "grey.png"
    grey.write_bytes(
        render_card(6, "Discovery", "x", "512x768", False, 4, HeroLook(fur=(128, 128, 135)))
    )
    return ref, same, grey


def test_check_offline_prints_one_json_line_per_image(tmp_path):
    ref, same, grey = images(tmp_path)
    r = run(["check", "--reference", str(ref), str(same), str(grey)])
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [set(x) for x in lines] == [{"image", "on_model", "score", "defects", "note"}] * 2
    assert (
        lines[0]["image"] == str(same) and lines[0]["on_model"] is True and lines[0]["score"] >= 70
    )
    assert (
        lines[1]["on_model"] is False
        and "fur or skin colour" in lines[1]["defects"]
        and lines[1]["score"] < 70
    )


def test_check_refuses_unreadable_files(tmp_path):
    ref, same, _ = images(tmp_path)
    junk = tmp_path / "notes.png"
    junk.write_text("not a picture")
    r = run(["check", "--reference", str(ref), str(same), str(junk)])
    assert r.returncode == 2 and "notes.png is not an image" in r.stderr and r.stdout == ""
    r = run(["check", "--reference", str(tmp_path / "missing.png"), str(same)])
    assert r.returncode == 2 and "cannot read the reference" in r.stderr
    r = run(["check", "--reference", str(ref), "--scene", "44", str(same)])
    assert r.returncode == 2 and "--scene" in r.stderr
    r = run(["check", str(same)])
    assert r.returncode == 2 and "--reference" in r.stderr  # argparse's own message


def test_check_with_openai_key_uses_the_vision_model(tmp_path):
    ref, same, grey = images(tmp_path)
    with FakeOpenAI() as fake:
        fake.script(
            "chat",
            Action.verdict(True, 91, [], "Same fox."),
            Action.verdict(False, 30, ["fur or skin colour"], "Grey fur."),
        )
        env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": fake.base_url}
        r = run(["check", "--reference", str(ref), "--scene", "3", str(same), str(grey)], env)
        assert r.returncode == 0, r.stderr
        lines = [json.loads(line) for line in r.stdout.splitlines()]
        assert [(x["on_model"], x["score"], x["defects"], x["note"]) for x in lines] == [
            (True, 91, [], "Same fox."),
            (False, 30, ["fur or skin colour"], "Grey fur."),
        ]
        assert [rec.n_images for rec in fake.of("chat")] == [2, 2]
        # A failed check is printed as not checked, with exit code 1.
        fake.script("chat", Action.refusal())
        r = run(["check", "--reference", str(ref), str(same)], env)
        line = json.loads(r.stdout)
        assert r.returncode == 1 and line["status"] == "not_checked" and "refused" in line["error"]
        assert "sk-test" not in r.stdout + r.stderr


def test_commands_table_builds_the_parser():
    assert "check" in COMMANDS
    args = build_parser().parse_args(["check", "--reference", "r.png", "a.png", "b.png"])
    assert args.images == ["a.png", "b.png"] and args.run is COMMANDS["check"][1]
