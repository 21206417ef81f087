import io
from pathlib import Path

import pytest
from PIL import Image

from foxpipe.providers.localstore import LocalStore, safe_id
from foxpipe.providers.offline import OfflineImages, render_card


@pytest.mark.parametrize("size", ["1024x1536", "1536x1024", "1088x1920", "1920x1088"])
def test_render_card_is_a_png_of_the_requested_size(size):
    data = render_card(3, "Underdog setup", "Rusty stares at the water.", size, powered=False)
    img = Image.open(io.BytesIO(data))
    assert img.format == "PNG"
    assert f"{img.width}x{img.height}" == size


def test_cards_differ_per_scene_and_powered_form_shows():
    a = render_card(1, "Underdog setup", "x", "512x768", powered=False)
    b = render_card(2, "Underdog setup", "x", "512x768", powered=False)
    c = render_card(2, "Underdog setup", "x", "512x768", powered=True)
    assert len({a, b, c}) == 3


async def test_offline_images_provider_renders_the_scene():
    result = await OfflineImages(delay=0).generate(
        "SHEET\nSCENE: Scene 4 (Underdog setup). Rusty waits.", "512x768", scene_number=4
    )
    assert result.path == "offline"
    assert Image.open(io.BytesIO(result.data)).size == (512, 768)


def test_local_store_saves_image_and_thumbnail(tmp_path):
    data = render_card(1, "Triumph", "x", "512x768", powered=True)
    stored = LocalStore(tmp_path).save("abcdefgh12", 0, 1, data, tags=[])
    assert Path(stored.local_path).read_bytes() == data
    assert Image.open(stored.thumb_path).size == (360, 540)
    assert stored.local_path.endswith("scene_01_v1.png")


def test_a_thumbnail_is_never_larger_than_its_image(tmp_path):
    data = render_card(1, "Triumph", "x", "288x512", powered=True)
    stored = LocalStore(tmp_path).save("abcdefgh12", 0, 1, data, tags=[])
    assert Image.open(stored.thumb_path).size == (288, 512)


@pytest.mark.parametrize("bad", ["../../etc", "a/b", "", "x" * 100, "..", "abc def gh"])
def test_local_store_refuses_ids_it_did_not_make(tmp_path, bad):
    with pytest.raises(ValueError):
        safe_id(bad)
    with pytest.raises(ValueError):
        LocalStore(tmp_path).save(bad, 0, 1, b"x", tags=[])


def test_a_variant_moves_the_camera_so_a_regeneration_looks_different():
    a = render_card(5, "Discovery", "x", "256x384", powered=False, variant=0)
    b = render_card(5, "Discovery", "x", "256x384", powered=False, variant=1)
    assert a != b
    assert a == render_card(
        5, "Discovery", "x", "256x384", powered=False, variant=10
    )  # deterministic


@pytest.mark.parametrize("size", ["1920x1088", "1536x1024", "1088x1920"])
def test_card_text_stays_inside_its_panel(size):
    long = "Rusty stares at the water and wonders what lies beyond the hills, " * 4
    img = Image.open(
        io.BytesIO(render_card(3, "Underdog setup", long, size, powered=False))
    ).convert("RGB")
    w, h = img.size
    pad = int(w * 0.05)
    below = img.crop((0, h - pad + 2, w, h))  # under the panel: only the ground
    assert len(below.getcolors(maxcolors=4096) or range(9999)) == 1
