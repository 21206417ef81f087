"""Scene image sizes at the video's shape, the model capability table and the price table."""

from __future__ import annotations

import pytest

from foxpipe import app
from foxpipe.config import Settings, load_settings
from foxpipe.domain.frames import SizeError, image_size, is_portrait, validate
from foxpipe.providers import video_models, video_prices
from foxpipe.providers.video_prices import CNY_PER_USD, clip_price


# ---------------------------------------------------------------- image sizes
@pytest.mark.parametrize(
    ("model", "orientation", "size"),
    [
        ("gpt-image-2", "portrait", "1088x1920"),
        ("gpt-image-2", "landscape", "1920x1088"),
        ("gpt-image-2.5", "portrait", "1088x1920"),
        ("GPT-Image-3", "landscape", "1920x1088"),
        ("offline", "portrait", "1088x1920"),
        ("gpt-image-1", "portrait", "1024x1536"),
        ("gpt-image-1.5", "landscape", "1536x1024"),
        ("gpt-image-1-mini", "portrait", "1024x1536"),
        ("chatgpt-image-latest", "portrait", "1024x1536"),
        ("dall-e-3", "landscape", "1536x1024"),
        ("some-other-model", "portrait", "1024x1536"),
    ],
)
def test_default_size_follows_the_model_and_the_video_shape(model, orientation, size):
    assert image_size(model, orientation) == size


def test_video_shaped_sizes_obey_the_gpt_image_2_rules():
    for size in ("1088x1920", "1920x1088"):
        w, h = (int(v) for v in size.split("x"))
        assert w % 16 == 0 and h % 16 == 0 and max(w, h) / min(w, h) <= 3
        assert abs(max(w, h) / min(w, h) / (16 / 9) - 1) < 0.01  # 9:16 within 1 %


@pytest.mark.parametrize(
    ("model", "orientation", "override", "result"),
    [
        ("gpt-image-2", "portrait", "1024x1792", "1024x1792"),
        ("gpt-image-2", "portrait", " 1088 X 1920 ", "1088x1920"),
        ("gpt-image-2", "portrait", "640x1920", "640x1920"),  # exactly 3:1
        ("gpt-image-1", "portrait", "1024x1536", "1024x1536"),
        ("gpt-image-2", "landscape", "1024x1024", "1024x1024"),
    ],
)
def test_an_override_the_model_accepts_is_used(model, orientation, override, result):
    assert image_size(model, orientation, override) == result


@pytest.mark.parametrize(
    ("model", "orientation", "override", "words"),
    [
        ("gpt-image-2", "portrait", "1000x1920", "multiples of 16"),
        ("gpt-image-2", "portrait", "608x1920", "3:1"),
        ("gpt-image-2", "portrait", "1920x1088", "does not match"),
        ("gpt-image-2", "portrait", "big", "look like"),
        ("gpt-image-2", "portrait", "4096x4096", "outside"),
        ("gpt-image-1", "portrait", "1088x1920", "only makes"),
        ("gpt-image-2", "square", "", "orientation"),
    ],
)
def test_a_bad_size_is_a_clear_error(model, orientation, override, words):
    with pytest.raises(SizeError) as info:
        image_size(model, orientation, override)
    assert words in str(info.value)


def test_the_app_picks_the_size_from_the_settings():
    portrait, landscape = {"aspect": "9:16"}, {"aspect": "16:9"}
    offline = Settings()
    assert app.image_size(portrait, offline) == "1088x1920"
    assert app.image_size(landscape, offline) == "1920x1088"
    live_new = Settings(openai_api_key="sk-test-xxxxxxxx", openai_image_model="gpt-image-2")
    assert app.image_size(portrait, live_new) == "1088x1920"
    live_old = Settings(openai_api_key="sk-test-xxxxxxxx", openai_image_model="gpt-image-1")
    assert app.image_size(portrait, live_old) == "1024x1536"
    assert app.image_size(landscape) == "1536x1024"  # no settings: the fixed sizes
    assert app.image_size(portrait, Settings(scene_image_size="1024x1792")) == "1024x1792"
    # A size that does not fit the shape falls back to the automatic one, never crashes.
    assert app.image_size(portrait, Settings(scene_image_size="2048x512")) == "1088x1920"


def test_a_bad_scene_image_size_setting_is_reported_and_dropped():
    s = load_settings({"SCENE_IMAGE_SIZE": "1000x1000"}, env={})
    assert s.scene_image_size == "" and any("SCENE_IMAGE_SIZE" in p for p in s.problems)
    s = load_settings({"SCENE_IMAGE_SIZE": "1088X1920"}, env={})
    assert s.scene_image_size == "1088x1920" and not s.problems
    s = load_settings(
        {"SCENE_IMAGE_SIZE": "1088x1920", "OPENAI_IMAGE_MODEL": "gpt-image-1"}, env={}
    )
    assert s.scene_image_size == "" and any("only makes" in p for p in s.problems)


def test_is_portrait():
    assert is_portrait("1088x1920") and is_portrait("1024x1536") and not is_portrait("1920x1088")
    assert is_portrait("garbage")
    assert validate("1920x1088", "gpt-image-2") == "1920x1088"


# ---------------------------------------------------------------- models
def test_capability_table():
    omni = video_models.caps("kling", "kling-v3-omni")
    assert omni.takes_references and omni.max_references == 4 and omni.native_audio
    assert omni.duration_for(5) == 5 and omni.duration_for(30) == 15
    turbo = video_models.caps("kling", "kling-v2-5-turbo")
    assert not turbo.takes_references and turbo.duration_for(7) == 5 and turbo.duration_for(8) == 10
    h3 = video_models.caps("hailuo", "MiniMax-H3")
    assert h3.api == "v2" and h3.max_references == 9 and h3.native_audio and "2K" in h3.resolutions
    h23 = video_models.caps("hailuo", "MiniMax-Hailuo-2.3")
    assert h23.api == "v1" and not h23.takes_references
    assert video_models.hailuo_resolution(h23, "1080P", 10) == "768P"  # 1080P only for 6 s
    assert video_models.hailuo_resolution(h23, "1080P", 6) == "1080P"
    assert video_models.hailuo_resolution(h3, "4K", 6) == "768P"
    unknown = video_models.caps("kling", "kling-v9")
    assert not unknown.takes_references and "Not in the table" in unknown.note
    assert video_models.caps("hailuo", "proxy/minimax-h3").api == "v2"
    with pytest.raises(ValueError):
        video_models.caps("sora", "x")
    assert Settings().kling_model == video_models.DEFAULT_MODEL["kling"] == "kling-v2-5-turbo"


# ---------------------------------------------------------------- prices
def test_price_table_entries():
    assert video_prices.PRICES_CHECKED == "2026-11-25"
    std = clip_price("kling", "kling-v2-5-turbo", "std", 5)
    assert std.usd == pytest.approx(0.6 / CNY_PER_USD * 5, abs=1e-3) and std.estimate
    pro10 = clip_price("kling", "kling-v3", "pro", 10)
    assert pro10.usd == pytest.approx(0.8 / CNY_PER_USD * 10, abs=1e-3)
    assert clip_price("kling", "kling-v3", "pro", 10, audio=True).usd > pro10.usd
    assert (
        clip_price("kling", "kling-v2-5-turbo", "std", 5, audio=True).usd == std.usd
    )  # no audio model
    h3 = clip_price("hailuo", "MiniMax-H3", "768P", 6)
    assert h3.usd == pytest.approx(0.48) and not h3.estimate
    assert clip_price("hailuo", "MiniMax-H3", "2K", 10).usd == pytest.approx(1.3)
    # The first 5 images are free, then US$0.04 each.
    assert clip_price("hailuo", "MiniMax-H3", "768P", 6, references=7).usd == pytest.approx(0.56)
    assert clip_price("hailuo", "MiniMax-Hailuo-2.3", "768P", 6).usd == pytest.approx(0.28)
    assert clip_price("hailuo", "MiniMax-Hailuo-2.3", "768P", 10).usd == pytest.approx(0.56)
    assert clip_price("hailuo", "MiniMax-Hailuo-2.3", "1080P", 6).usd == pytest.approx(0.49)
    assert clip_price("hailuo", "MiniMax-Hailuo-2.3-Fast", "768P", 6).usd < 0.28
    odd = clip_price("kling", "kling-v9", "std", 5)
    assert odd.estimate and odd.usd == std.usd


def test_a_story_of_twenty_clips_is_priced_in_the_expected_range():
    """The issue's figure: about US$0.30-0.60 a clip, twenty per story."""
    for vendor, model, tier, secs in (
        ("kling", "kling-v2-5-turbo", "std", 5),
        ("kling", "kling-v3-omni", "pro", 5),
        ("hailuo", "MiniMax-H3", "768P", 6),
        ("hailuo", "MiniMax-Hailuo-2.3", "768P", 6),
    ):
        per = clip_price(vendor, model, tier, secs).usd
        assert 0.2 <= per <= 0.65, (model, per)
