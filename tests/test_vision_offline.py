"""The embedded continuity check: measured on a labelled set, and its edges."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from foxpipe.domain import prompts
from foxpipe.domain.continuity import DEFECTS, reference_text
from foxpipe.domain.story import BEATS
from foxpipe.providers import vision_offline
from foxpipe.providers.offline import HeroLook, OfflineImages, render_card, render_reference
from foxpipe.providers.vision_offline import FeatureCache, OfflineVision, look_from_text
from tests.continuityset import Scores, pairs

# The whole module on one xdist worker (``--dist loadgroup``): the module fixture ``labelled``
# is then built once, not once on each worker the module's tests are spread over. Do not
# mark a test here one_worker/e2e: xdist would join the group names, and that test would
# leave the one_worker group (tests/conftest.py).
pytestmark = pytest.mark.xdist_group("test_vision_offline")


@pytest.fixture(scope="module")
def labelled():
    checker = OfflineVision()
    out = []
    for p in pairs("1024x1536"):
        out.append((p, checker.check_sync(p.reference, "", p.image, p.scene)))
    return out


def test_labelled_set_precision_and_recall(labelled):
    assert len(labelled) >= 40
    assert (
        sum(p.on_model for p, _ in labelled) >= 20
        and sum(not p.on_model for p, _ in labelled) >= 20
    )
    s = Scores()
    for p, v in labelled:
        assert v.status == "checked" and v.checker == "offline"
        s.add(not p.on_model, not v.on_model)
    assert s.precision >= 0.9, (s.precision, s)
    assert s.recall >= 0.9, (s.recall, s)


def test_verdicts_have_the_shape_and_name_the_defect(labelled):
    named = {k: [] for k in ("species", "fur", "outfit")}
    for p, v in labelled:
        assert 0 <= v.score <= 100 and set(v.defects) <= set(DEFECTS) and v.note
        assert v.on_model == (not v.defects)
        assert (
            v.score >= 70
        ) == v.on_model  # the score agrees with the call at the default threshold
        if not p.on_model:
            named[p.kind].append(p.expected_defect in v.defects)
    for kind, hits in named.items():
        assert sum(hits) / len(hits) >= 0.75, (kind, hits)


def test_default_renderer_output_is_unchanged():
    # Digest of the renderer's output before hero looks existed (same Pillow).
    data = render_card(1, "Underdog setup", "hello there", "1024x1536", False, 0)
    assert (
        hashlib.sha256(data).hexdigest()
        == "6b1ddc75c8f49a417b8f1c92c3fa3407b4ca0bc9919db31d71c715514ab3fa98"
    )
    assert render_card(3, "Discovery", "x", "256x384", True, 5, HeroLook()) == render_card(
        3, "Discovery", "x", "256x384", True, 5
    )


def test_look_from_text():
    assert look_from_text("HERO: Rusty, a young red fox, small; a white-tipped tail") == HeroLook()
    lk = look_from_text("HERO: Pip, a young grey rabbit, small; wears a scarf")
    assert (lk.species, lk.fur, lk.outfit) == ("rabbit", (128, 128, 135), "scarf")
    assert look_from_text("HERO: Bo, a young black cat").species == "cat"
    assert look_from_text("").species == "fox"


async def test_text_reference_checks_the_offline_story():
    """References skipped (offline): each scene the embedded renderer makes for the default
    character sheet is on model against the sheet's text; a bear is not."""
    sheet = prompts.character_sheet({"hero_name": "Rusty"})
    images = OfflineImages(delay=0)
    checker = OfflineVision()
    for n in (1, 6, 11, 17):
        img = await images.generate(
            f"{sheet}\nSCENE: Scene {n} ({BEATS[n - 1].name}). Rusty runs.",
            "1024x1536",
            scene_number=n,
        )
        v = await checker.check(None, reference_text(sheet, n), img.data, n)
        assert v.on_model, (n, v)
    bear = render_card(4, BEATS[3].name, "x", "1024x1536", False, 3, HeroLook("bear"))
    v = await checker.check(None, reference_text(sheet, 4), bear, 4)
    assert not v.on_model and "species" in v.defects


async def test_unreadable_inputs_are_not_checked():
    checker = OfflineVision()
    ref = render_reference("256x384")
    v = await checker.check(ref, "", b"not an image", 2)
    assert v.status == "not_checked" and "image" in v.error and v.on_model
    v = await checker.check(b"\x89PNG broken", "", ref, 2)
    assert v.status == "not_checked" and "reference" in v.error


async def test_an_image_without_a_hero():
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (300, 450), (90, 140, 200)).save(buf, "PNG")
    v = await OfflineVision().check(render_reference("512x768"), "", buf.getvalue(), 3)
    assert not v.on_model and v.score < 70 and "No hero" in v.note


def test_label_matches_a_flood_fill():
    import numpy as np

    from foxpipe.providers.vision_offline import label

    rng = np.random.default_rng(7)
    mask = rng.random((40, 50)) > 0.45
    got = label(mask)
    # A plain breadth-first flood fill as the reference.
    want = np.full(mask.shape, -1)
    n = 0
    for y0, x0 in zip(*np.nonzero(mask), strict=True):
        if want[y0, x0] >= 0:
            continue
        stack = [(y0, x0)]
        want[y0, x0] = n
        while stack:
            y, x = stack.pop()
            for yy, xx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= yy < 40 and 0 <= xx < 50 and mask[yy, xx] and want[yy, xx] < 0:
                    want[yy, xx] = n
                    stack.append((yy, xx))
        n += 1
    assert (got >= 0).sum() == mask.sum() and len(np.unique(got[got >= 0])) == n
    pairs = {(int(a), int(b)) for a, b in zip(got[mask], want[mask], strict=True)}
    assert len(pairs) == n  # one-to-one


def test_an_image_checked_again_is_measured_once_and_judged_the_same(monkeypatch):
    cache = FeatureCache(size=3)
    monkeypatch.setattr(vision_offline, "IMAGE_FEATURES", cache)
    checker = OfflineVision()
    ref = render_reference("288x512")
    text = f"A scene of its own {uuid.uuid4()}"
    fox = render_card(4, "Discovery", text, "288x512", False)
    rabbit = render_card(4, "Discovery", text, "288x512", False, look=HeroLook(species="rabbit"))
    first = [checker.check_sync(ref, "", img, 4) for img in (fox, rabbit)]
    assert (cache.misses, cache.hits) == (2, 0)
    again = [checker.check_sync(ref, "", img, 4) for img in (fox, rabbit)]
    assert (cache.misses, cache.hits) == (2, 2)

    def judged(vs):
        return [(v.status, v.on_model, v.score, v.defects) for v in vs]

    assert judged(again) == judged(first)
    assert first[0].on_model and not first[1].on_model and "species" in first[1].defects
    # An unreadable image is said to be so each time and never kept.
    for _ in range(2):
        assert checker.check_sync(ref, "", b"not an image", 4).status == "not_checked"
    assert cache.misses == 4 and len(cache._items) == 2
    # At most ``size`` images are kept, the least recently checked leaving first: the fox,
    # checked again now, stays; the rabbit (checked before it) leaves.
    checker.check_sync(ref, "", fox, 4)
    assert (cache.misses, cache.hits) == (4, 3)
    others = [render_card(n, "Discovery", text, "288x512", False) for n in (5, 6)]
    for img in others:
        checker.check_sync(ref, "", img, 4)
    assert len(cache._items) == 3 and cache.misses == 6
    checker.check_sync(ref, "", fox, 4)
    assert (cache.misses, cache.hits) == (6, 4)
    checker.check_sync(ref, "", rabbit, 4)  # left first: measured again
    assert cache.misses == 7
