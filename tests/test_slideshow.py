"""The local renderer: real ffmpeg (from imageio-ffmpeg), tiny frames, short scenes."""

from __future__ import annotations

import imageio_ffmpeg
import pytest
from PIL import Image, ImageStat

from foxpipe.providers import slideshow
from foxpipe.providers.slideshow import Segment
from tests.video_helpers import make_clip


def _images(tmp_path, sizes):
    paths = []
    for i, size in enumerate(sizes):
        p = tmp_path / f"img{i}.png"
        Image.new("RGB", size, (40 + 60 * i, 120, 200 - 50 * i)).save(p)
        paths.append(str(p))
    return paths


def test_three_scene_slideshow_has_the_right_length_size_codec_and_frames(tmp_path):
    paths = _images(tmp_path, [(200, 300), (300, 200), (180, 320)])
    segs = [Segment(p, f"Scene {i + 1}: the fox runs.", 1.0) for i, p in enumerate(paths)]
    out = tmp_path / "v.mp4"
    seen: list[float] = []
    result = slideshow.render(segs, out, (180, 320), progress=seen.append)

    info = slideshow.probe(out)
    assert (info.codec, info.pix_fmt, info.width, info.height) == ("h264", "yuv420p", 180, 320)
    frames, secs = imageio_ffmpeg.count_frames_and_secs(str(out))
    expected = (
        3 * 1.0 + slideshow.CROSSFADE
    )  # three scenes, the first fade-in overlap kept at the end
    assert abs(secs - expected) <= 3 / slideshow.FPS
    assert abs(frames - expected * slideshow.FPS) <= 3
    assert abs(result.duration - secs) < 0.05
    assert seen and seen[-1] == pytest.approx(1.0, abs=0.05)
    # Subtitles cover the video without gaps, one cue per scene, in order.
    assert [c[2] for c in result.cues] == [s.text for s in segs]
    assert result.cues[0][0] == 0 and result.cues[-1][1] == pytest.approx(secs, abs=0.05)
    assert all(a[1] == b[0] for a, b in zip(result.cues, result.cues[1:], strict=False))


def test_captions_are_burned_into_the_lower_third(tmp_path):
    (p,) = _images(tmp_path, [(180, 320)])
    plain, captioned = tmp_path / "a.mp4", tmp_path / "b.mp4"
    seg = [Segment(p, "A long caption about the fox and the river, in white letters.", 0.4)]
    slideshow.render(seg, plain, (180, 320), captions=False)
    slideshow.render(seg, captioned, (180, 320), captions=True)

    def lower_third_mean(path):
        gen = imageio_ffmpeg.read_frames(str(path))
        meta = next(gen)
        w, h = meta["size"]
        frame = next(gen)
        gen.close()
        img = Image.frombytes("RGB", (w, h), frame).crop((0, int(h * 0.6), w, h)).convert("L")
        return ImageStat.Stat(img).mean[0], w, h

    a, w, h = lower_third_mean(plain)
    b, _, _ = lower_third_mean(captioned)
    assert (w, h) == (180, 320)
    assert abs(a - b) > 5  # the dark band and white text changed the picture


def test_cover_fit_crops_around_the_centre_never_stretches():
    # A wide image: red edges, green middle. Fitted into a square, only green remains.
    img = Image.new("RGB", (300, 100), (255, 0, 0))
    img.paste((0, 255, 0), (100, 0, 200, 100))
    out = slideshow.cover_fit(img, 90, 90)
    assert out.size == (90, 90)
    assert out.getpixel((2, 45))[1] > 200 and out.getpixel((87, 45))[0] < 60
    # 1024x1536 (2:3) into 9:16: the full height is kept, the sides are cut.
    tall = Image.new("RGB", (1024, 1536), (0, 0, 255))
    tall.paste((255, 255, 0), (0, 0, 1024, 40))  # a yellow stripe along the top edge stays visible
    fitted = slideshow.cover_fit(tall, 1080, 1920)
    assert fitted.size == (1080, 1920)
    assert fitted.getpixel((540, 10))[0] > 200 and fitted.getpixel((540, 1900))[2] > 200


def test_clips_and_stills_join_into_one_video(tmp_path):
    clip = tmp_path / "clip.mp4"
    make_clip(clip, "256x144", 1.0)
    (p,) = _images(tmp_path, [(200, 300)])
    segs = [
        Segment(str(clip), "clip", 1.0, clip=True),
        Segment(p, "still", 0.5),
        Segment(str(clip), "clip again", 1.0, clip=True),
    ]
    out = tmp_path / "mix.mp4"
    result = slideshow.render(segs, out, (180, 320))
    info = slideshow.probe(out)
    assert (info.width, info.height, info.pix_fmt) == (180, 320, "yuv420p")
    expected = 1.0 + (0.5 + slideshow.CROSSFADE) + 1.0 - 2 * slideshow.CROSSFADE
    assert abs(info.duration - expected) <= 3 / slideshow.FPS
    assert abs(result.duration - expected) <= 3 / slideshow.FPS


def test_srt_format():
    text = slideshow.srt_text([(0.0, 1.25, "One"), (1.25, 3661.5, "Two\nlines")])
    assert (
        text
        == "1\n00:00:00,000 --> 00:00:01,250\nOne\n\n2\n00:00:01,250 --> 01:01:01,500\nTwo lines\n"
    )


@pytest.mark.parametrize(
    ("size", "frame"),
    [
        ("1024x1536", (1080, 1920)),
        ("1536x1024", (1920, 1080)),
        ("1088x1920", (1080, 1920)),
        ("1920x1088", (1920, 1080)),
    ],
)
def test_output_size_follows_the_story_format(size, frame):
    assert slideshow.output_size(size) == frame


def test_a_broken_input_is_a_readable_error(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    with pytest.raises(slideshow.RenderError):
        slideshow.render([Segment(str(bad), "x", 1.0, clip=True)], tmp_path / "o.mp4", (180, 320))


def test_video_shaped_frames_lose_almost_nothing_to_the_crop():
    """A 1088x1920 scene fills a 1080x1920 frame with under 1 % of its width cut; from a
    1024x1536 scene a sixth of the width is cut (a hero near the edge would be lost)."""

    def edge_survives(size: tuple[int, int]) -> bool:
        img = Image.new("RGB", size, (0, 0, 0))
        stripe = size[0] // 100  # the outer 1 % of the width, in white
        img.paste((255, 255, 255), (0, 0, stripe, size[1]))
        out = slideshow.cover_fit(img, 1080, 1920)
        assert out.size == (1080, 1920)
        return out.getpixel((1, 960))[0] > 200

    assert edge_survives((1088, 1920))
    assert not edge_survives((1024, 1536))


def test_a_slideshow_of_video_shaped_scenes(tmp_path):
    from foxpipe.providers.offline import render_card

    paths = []
    for i in range(2):
        p = tmp_path / f"s{i}.png"
        p.write_bytes(
            render_card(i + 1, "Underdog setup", "The fox runs.", "1088x1920", powered=False)
        )
        paths.append(str(p))
    out = tmp_path / "v.mp4"
    slideshow.render([Segment(p, "x", 0.5) for p in paths], out, slideshow.output_size("1088x1920"))
    info = slideshow.probe(out)
    assert (info.width, info.height, info.codec) == (1080, 1920, "h264")
