"""The embedded continuity check: compares an image with the hero's reference, locally.

Steps (Pillow + numpy, no model):

1. Both images are scaled to ``WORK_PX`` on the long side and converted to CIE Lab.
2. The subject is segmented by background estimation: the colours on the image's left and
   right borders near a pixel's row are the background there; a pixel far from all of them
   (ΔE) is foreground. Foreground
   pieces are labelled; flat rectangles (caption panels) are dropped and the largest piece,
   with the small pieces inside its box, is the subject.
3. Colour: the subject's significant colours (coarse Lab bins holding ≥ 5 % of it). The
   reference's main colour missing from the image is a fur or skin colour defect; any other
   significant colour present on one side only is an outfit or accessory defect.
4. Shape: the subject's thick parts (a morphological opening removes thin glows and outlines)
   are normalised to their box and compared as masks (IoU, mirrored too) and by aspect ratio:
   species, or size and proportions. Colours are taken from the thick parts too, so a glow
   around the powered-up form neither helps nor hurts.
5. Perceptual: a DCT hash (pHash) of the subject's box and an edge-orientation histogram
   (HOG-like) add to the score; a hash far off with a silhouette that differs too names the
   species. Markings, eyes and the form are not named: they are below what this check can
   tell from a cut-off tail tip or a glow (see the README).

When the reference is only text (no reference sheet was made), the embedded renderer draws a
reference from the species, fur colour and outfit the text names, and the image is compared
with that. See the README for what this check cannot see.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from foxpipe.domain.continuity import Verdict, form_for
from foxpipe.providers.offline import FOX_FUR, SPECIES, HeroLook, render_reference

log = logging.getLogger(__name__)

WORK_PX = 240  # long side, in pixels, of the images compared
BG_DELTA_E = 12.0  # a pixel this far from every border colour is foreground
COLOUR_SHARE = 0.05  # a colour bin holding this share of the subject is significant
COLOUR_MATCH_E = 20.0  # two colours this close (ΔE) are the same colour
SPECIES_IOU = 0.62  # shape IoU below this: another animal
PROPORTION_IOU = 0.70  # below this (but above SPECIES_IOU): the proportions changed
ASPECT_RATIO = 1.3  # box aspect ratios further apart than this: proportions changed
OPENING = 0.2  # opening radius, as a share of the subject's thickness
SPECIES_HASH = 0.34  # share of pHash bits that differ from which (with an IoU below HASH_IOU) the shape is another animal's
HASH_IOU = 0.78


class ImageUnreadable(ValueError):
    """The bytes are not an image Pillow can read."""


# ---------------------------------------------------------------------------- colour


def load_rgb(data: bytes, px: int = WORK_PX) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise ImageUnreadable(f"not a readable image ({type(e).__name__})") from e
    w, h = rgb.size
    scale = px / max(w, h)
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    return np.asarray(rgb.resize(size, Image.Resampling.BOX), dtype=np.float32) / 255.0


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB in 0..1 to CIE Lab (D65)."""
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array(
        [[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]], np.float32
    )
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883], np.float32)
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    lab = np.stack(
        [116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1
    )
    return lab.astype(np.float32)


def _bins(lab: np.ndarray) -> np.ndarray:
    """Coarse Lab bins (L by 12, a and b by 16) as one integer per pixel."""
    li = np.clip((lab[..., 0] / 12).astype(np.int32), 0, 9)
    ai = np.clip(((lab[..., 1] + 128) / 16).astype(np.int32), 0, 15)
    bi = np.clip(((lab[..., 2] + 128) / 16).astype(np.int32), 0, 15)
    return (li * 16 + ai) * 16 + bi


# ---------------------------------------------------------------------------- segmentation


def _shift(a: np.ndarray, dy: int, dx: int, fill: float | bool | int) -> np.ndarray:
    out = np.full_like(a, fill)
    h, w = a.shape[:2]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = a[ys, xs]
    return out


def erode(mask: np.ndarray, steps: int = 1) -> np.ndarray:
    for _ in range(steps):
        m = mask.copy()
        for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            m &= _shift(mask, dy, dx, False)
        mask = m
    return mask


def dilate(mask: np.ndarray, steps: int = 1) -> np.ndarray:
    for _ in range(steps):
        m = mask.copy()
        for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            m |= _shift(mask, dy, dx, False)
        mask = m
    return mask


def label(mask: np.ndarray) -> np.ndarray:
    """4-connected components: each foreground pixel gets its component's number (background
    -1). Runs of each row are joined with the overlapping runs of the row above (union-find)."""
    h, w = mask.shape
    padded = np.zeros((h, w + 2), np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    runs: list[tuple[int, int, int]] = []  # (row, start, end)
    row_runs: list[list[int]] = []
    for y in range(h):
        starts = np.flatnonzero(edges[y] == 1)
        ends = np.flatnonzero(edges[y] == -1)
        ids = []
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
            ids.append(len(runs))
            runs.append((y, a, b))
        row_runs.append(ids)
    parent = list(range(len(runs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for y in range(1, h):
        above, here = row_runs[y - 1], row_runs[y]
        j = 0
        for i in here:
            _, a, b = runs[i]
            while j < len(above) and runs[above[j]][2] <= a:
                j += 1
            k = j
            while k < len(above) and runs[above[k]][1] < b:
                ra, rb = find(i), find(above[k])
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
                k += 1
    out = np.full((h, w), -1, np.int64)
    for i, (y, a, b) in enumerate(runs):
        out[y, a:b] = find(i)
    return out


def background_distance(lab: np.ndarray, strip: int = 2, window: float = 0.03) -> np.ndarray:
    """Each pixel's colour distance (ΔE) to the background estimated from the image's left and
    right borders near its row (within ``window`` of the height): a sky's gradient, hills and
    a studio backdrop all reach the borders; the subject rarely fills them."""
    h, w = lab.shape[:2]
    samples = np.concatenate([lab[:, :strip], lab[:, -strip:]], axis=1)  # (h, 2*strip, 3)
    m = max(1, round(window * h))
    # A colour seen on a border for only a few rows (an ear or a tail tip cut by the frame, a
    # glow's outline) is not background: keep samples that recur in a third of their window.
    near = np.zeros(samples.shape[:2], np.int32)
    for d in range(-m, m + 1):
        rows = np.clip(np.arange(h) + d, 0, h - 1)
        diff = samples - samples[rows]
        near += np.einsum("...i,...i->...", diff, diff) < 6.0**2
    keep = near >= (2 * m + 1) / 3  # (h, 2*strip)
    # Each row's candidate colours: the kept border samples of every other row in its window
    # (border colours change slowly). ΔE² = |p|² + min over c of (|c|² - 2 p·c): one batched
    # matrix product per image instead of a pass over the image per candidate. (Images are
    # compared at WORK_PX, so the (h, w, n) arrays stay a few MB.)
    shifts = [np.clip(np.arange(h) + d, 0, h - 1) for d in range(-m, m + 1, 2)]
    cands = np.concatenate([samples[r] for r in shifts], axis=1).astype(np.float64)  # (h, n, 3)
    valid = np.concatenate([keep[r] for r in shifts], axis=1)  # (h, n)
    cands[~valid] = 0.0
    p = lab.astype(np.float64)
    term = (cands * cands).sum(-1)[:, None, :] - 2.0 * (p @ cands.transpose(0, 2, 1))
    term = np.where(valid[:, None, :], term, np.inf).min(axis=-1)  # (h, w)
    return np.sqrt(np.maximum((p * p).sum(-1) + term, 0.0)).astype(np.float32)


def subject_mask(lab: np.ndarray) -> np.ndarray:
    """The subject: foreground by distance to the border colours, cleaned, largest piece."""
    h, w = lab.shape[:2]
    fg = background_distance(lab) > BG_DELTA_E
    fg[:1], fg[-1:], fg[:, :1], fg[:, -1:] = False, False, False, False
    fg = dilate(erode(fg, 1), 1)  # drops text strokes and specks
    # Flat, filled rectangles of one colour (a caption panel, a frame) are not the subject.
    bins = np.where(fg, _bins(lab), -1)
    ids, counts = np.unique(bins[bins >= 0], return_counts=True)
    for b, n in zip(ids.tolist(), counts.tolist(), strict=True):
        if n > 0.03 * h * w:
            ys, xs = np.nonzero(bins == b)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            if n / ((y1 - y0) * (x1 - x0)) > 0.8:
                fg[y0:y1, x0:x1] = False  # the panel and whatever is written on it
    # Pieces a little apart (a head drawn above the body, an ear) belong together.
    comps = label(dilate(fg, max(2, round(0.03 * max(h, w)))))
    comps = np.where(fg, comps, -1)
    ids, counts = np.unique(comps[comps >= 0], return_counts=True)
    best, best_n = -1, 0
    boxes: dict[int, tuple[int, int, int, int]] = {}
    for cid, n in zip(ids.tolist(), counts.tolist(), strict=True):
        ys, xs = np.nonzero(comps == cid)
        boxes[cid] = (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1)
        if n > best_n:
            best, best_n = cid, n
    if best < 0:
        return np.zeros((h, w), bool)
    y0, y1, x0, x1 = boxes[best]
    mask = comps == best
    for cid, box in boxes.items():  # small pieces inside the subject's box (an eye, a tip)
        if cid != best and box[0] >= y0 and box[1] <= y1 and box[2] >= x0 and box[3] <= x1:
            mask |= comps == cid
    return mask


# ---------------------------------------------------------------------------- features


@dataclass
class Features:
    mask: np.ndarray  # the subject
    core: np.ndarray  # its thick parts, normalised to their box (SHAPE x SHAPE)
    aspect: float  # height / width of the thick parts' box
    thin_share: float  # share of the subject that is thin structure (a glow, outlines)
    colours: list[
        tuple[np.ndarray, float]
    ]  # significant Lab colours and their shares, largest first
    all_lab: np.ndarray  # the subject's pixels in Lab
    phash: np.ndarray  # 64 bits
    hog: np.ndarray  # edge-orientation histogram (unit length)
    found: bool


SHAPE = 24


def _thickness(mask: np.ndarray) -> int:
    t, m = 0, mask
    while m.any() and t < 64:
        m = erode(m)
        t += 1
    return t


def _main_piece(mask: np.ndarray) -> np.ndarray:
    """The largest piece of ``mask`` with the sizeable pieces close to it (a head drawn a
    little apart): what an opening leaves of a glow's outline, or a sun it touched, is dropped."""
    h, w = mask.shape
    pieces = label(mask)
    ids, counts = np.unique(pieces[pieces >= 0], return_counts=True)
    if len(ids) <= 1:
        return mask
    main = pieces == ids[np.argmax(counts)]
    near = dilate(main, 2 * max(2, round(0.03 * max(h, w))))
    keep = main.copy()
    for pid, n in zip(ids.tolist(), counts.tolist(), strict=True):
        piece = pieces == pid
        if n >= 0.05 * counts.max() and (piece & near).any():
            keep |= piece
    return keep


def _resample(mask: np.ndarray, n: int = SHAPE) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    crop = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.uint8) * 255
    im = Image.fromarray(crop).resize((n, n), Image.Resampling.BILINEAR)
    return np.asarray(im) > 127


def _dct_matrix(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    return np.cos(np.pi * (2 * i + 1) * k / (2 * n)).astype(np.float32)


_DCT32 = _dct_matrix(32)


def phash(gray: np.ndarray) -> np.ndarray:
    """A 64-bit DCT perceptual hash of a grey image (any size)."""
    im = Image.fromarray(np.clip(gray * 255, 0, 255).astype(np.uint8)).resize(
        (32, 32), Image.Resampling.BOX
    )
    a = np.asarray(im, np.float32)
    d = (_DCT32 @ a @ _DCT32.T)[:8, :8].ravel()
    return d > np.median(d[1:])


def hog(gray: np.ndarray, bins: int = 9) -> np.ndarray:
    """Histogram of edge orientations (unsigned, magnitude-weighted) over 2x2 cells."""
    gy, gx = np.gradient(gray)
    mag = np.hypot(gx, gy)
    ang = (np.arctan2(gy, gx) % np.pi) / np.pi * bins
    idx = np.minimum(ang.astype(np.int32), bins - 1)
    h, w = gray.shape
    out = []
    for cy in range(2):
        for cx in range(2):
            sl = (slice(cy * h // 2, (cy + 1) * h // 2), slice(cx * w // 2, (cx + 1) * w // 2))
            out.append(np.bincount(idx[sl].ravel(), mag[sl].ravel(), bins))
    v = np.concatenate(out)
    n = np.linalg.norm(v)
    return v / n if n else v


class FeatureCache:
    """The features of images checked lately, by content. An image's features depend on its
    bytes alone, and the same image can be checked again: a reviewer's "Check again", the
    same picture in another story. A hit skips decoding
    and measuring the image (about 30 ms of CPU); the comparison with the reference always
    runs."""

    def __init__(self, size: int = 64):
        self.size = size
        self._items: OrderedDict[bytes, Features] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def features(self, data: bytes) -> Features:
        key = hashlib.blake2b(data, digest_size=20).digest()
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return found
            self.misses += 1
        made = features(data)  # an unreadable image raises and is not kept
        with self._lock:
            self._items[key] = made
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return made

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


IMAGE_FEATURES = FeatureCache()


def features(data: bytes) -> Features:
    rgb = load_rgb(data)
    lab = rgb_to_lab(rgb)
    mask = subject_mask(lab)
    n = int(mask.sum())
    if n < 30:
        empty = np.zeros((SHAPE, SHAPE), bool)
        return Features(
            mask,
            empty,
            1.0,
            0.0,
            [],
            np.zeros((0, 3), np.float32),
            np.zeros(64, bool),
            np.zeros(36),
            False,
        )
    # Thick parts: an opening by a part of the subject's thickness drops glows and outlines.
    r = max(1, round(_thickness(mask) * OPENING))
    core = dilate(erode(mask, r), r) & mask
    if core.sum() < 20:
        core = mask
    core = _main_piece(core)
    thin_share = 1.0 - core.sum() / n
    ys, xs = np.nonzero(core)
    aspect = (ys.max() - ys.min() + 1) / (xs.max() - xs.min() + 1)
    pix = lab[core]
    bins = _bins(pix)
    ids, counts = np.unique(bins, return_counts=True)
    nc = len(pix)
    colours = [
        (pix[bins == b].mean(0), c / nc)
        for b, c in zip(ids.tolist(), counts.tolist(), strict=True)
        if c / nc >= COLOUR_SHARE
    ]
    colours.sort(key=lambda t: -t[1])
    # The perceptual parts look at the thick parts' box, background flattened to mid grey.
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    gray = lab[y0:y1, x0:x1, 0] / 100.0
    gray = np.where(core[y0:y1, x0:x1], gray, 0.5)
    return Features(
        mask,
        _resample(core),
        float(aspect),
        float(thin_share),
        colours,
        pix,
        phash(gray),
        hog(gray),
        True,
    )


# ---------------------------------------------------------------------------- comparison


def _share_near(colour: np.ndarray, pixels: np.ndarray) -> float:
    if not len(pixels):
        return 0.0
    return float((np.linalg.norm(pixels - colour, axis=1) < COLOUR_MATCH_E).mean())


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


@dataclass
class Comparison:
    score: int
    defects: list[str]
    note: str
    figures: dict[str, float]


def compare(ref: Features, img: Features) -> Comparison:
    """The named defects and a 0-100 score of ``img`` against ``ref``. The score weighs the
    matched colours, the silhouette's IoU, the hash and the edge histogram, and follows the
    call: at most 60 with a named defect, at least 70 without (the default threshold)."""
    if not img.found:
        return Comparison(0, ["species"], "No hero found in the image.", {})
    if not ref.found:
        return Comparison(0, [], "No hero found in the reference.", {})
    defects: list[str] = []
    notes: list[str] = []
    # Colours present on one side only.
    missing = [(c, s) for c, s in ref.colours if _share_near(c, img.all_lab) < 0.01]
    extra = [(c, s) for c, s in img.colours if _share_near(c, ref.all_lab) < 0.01]
    main_ref = ref.colours[0][0] if ref.colours else None
    main_img = img.colours[0][0] if img.colours else None
    fur_changed = bool(missing) and main_ref is not None and any(c is main_ref for c, _ in missing)
    if main_img is not None and any(c is main_img for c, _ in extra):
        fur_changed = True
    matched = 1.0 - sum(s for _, s in missing) - sum(s for _, s in extra) / 2
    if fur_changed:
        defects.append("fur or skin colour")
        notes.append("the main colour differs from the reference")
    others = [c for c, _ in missing + extra if c is not main_ref and c is not main_img]
    if others:
        defects.append("outfit or accessory")
        notes.append("a colour patch (outfit or accessory) is on one image only")
    # Shape of the thick parts, mirrored too (the hero may face the other way).
    iou = max(_iou(ref.core, img.core), _iou(ref.core, img.core[:, ::-1]))
    aspect_ratio = max(ref.aspect, img.aspect) / max(1e-6, min(ref.aspect, img.aspect))
    hash_diff = float((ref.phash != img.phash).mean())
    hog_sim = float(np.dot(ref.hog, img.hog))
    if iou < SPECIES_IOU or (hash_diff >= SPECIES_HASH and iou < HASH_IOU):
        defects.append("species")
        notes.append("the body shape is another animal's")
    elif iou < PROPORTION_IOU or aspect_ratio > ASPECT_RATIO:
        defects.append("size and proportions")
        notes.append("the body proportions differ")
    raw = 100 * (
        0.4 * max(0.0, matched)
        + 0.4 * min(1.0, iou / 0.9)
        + 0.1 * (1 - hash_diff)
        + 0.1 * max(0.0, hog_sim)
    )
    score = int(round(min(raw, 60.0) if defects else max(raw, 70.0)))
    note = "On model." if not defects else (notes[0][0].upper() + "; ".join(notes)[1:] + ".")
    figures = {
        "matched": round(matched, 3),
        "iou": round(iou, 3),
        "aspect_ratio": round(aspect_ratio, 3),
        "thin_ref": round(ref.thin_share, 3),
        "thin_img": round(img.thin_share, 3),
        "hash_diff": round(hash_diff, 3),
        "hog_sim": round(hog_sim, 3),
    }
    return Comparison(score, defects, note, figures)


# ---------------------------------------------------------------------------- text references

_COLOUR_WORDS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    (r"\b(?:red|orange|ginger|rust(?:y)?|copper)\b", FOX_FUR),
    (r"\b(?:grey|gray|silver|ash)\b", (128, 128, 135)),
    (r"\b(?:white|snowy|cream)\b", (240, 240, 235)),
    (r"\b(?:black|ebony|jet)\b", (40, 40, 45)),
    (r"\b(?:brown|chocolate|chestnut)\b", (110, 70, 40)),
    (r"\b(?:golden|gold|yellow|sandy|tawny)\b", (220, 180, 60)),
)
_OUTFIT_WORDS = ("scarf", "cape", "hat")


def look_from_text(text: str) -> HeroLook:
    """The species, fur colour and outfit a character sheet's hero part names (defaults: the fox)."""
    t = text.lower()
    species = next((s for s in SPECIES if re.search(rf"\b{s}s?\b", t)), "fox")
    if species == "fox" and re.search(r"\b(?:bunny|hare)\b", t):
        species = "rabbit"
    fur = FOX_FUR
    hero_words = t.split(";", 1)[0]  # "a young red fox, small and slender" before the details
    for pattern, rgb in _COLOUR_WORDS:
        if re.search(pattern, hero_words):
            fur = rgb
            break
    outfit = next((o for o in _OUTFIT_WORDS if re.search(rf"\b{o}\b", t)), "")
    return HeroLook(species=species, fur=fur, outfit=outfit)


# ---------------------------------------------------------------------------- the checker


class OfflineVision:
    """The VisionCheck that needs no key: free, local, deterministic."""

    name = "offline"
    free = True

    def __init__(self) -> None:
        self._ref_cache: dict[tuple[int, int], Features] = {}
        # Checks run on several threads at once: the first computes the hero's features,
        # the others wait for it instead of computing the same thing beside it.
        self._ref_lock = threading.Lock()

    def _ref_features(
        self, reference: bytes | None, text: str, scene_number: int, form: str = ""
    ) -> Features:
        powered = form_for(scene_number, form) == "powered"
        key = (hash(reference), len(reference)) if reference else (hash(text), int(powered))
        with self._ref_lock:
            cached = self._ref_cache.get(key)
            if cached is not None:
                return cached
            if not reference:
                reference = render_reference("512x768", powered=powered, look=look_from_text(text))
            feats = features(reference)
            if len(self._ref_cache) > 32:
                self._ref_cache.clear()
            self._ref_cache[key] = feats
            return feats

    def check_sync(
        self,
        reference: bytes | None,
        reference_text: str,
        image: bytes,
        scene_number: int = 0,
        form: str = "",
    ) -> Verdict:
        t0 = time.perf_counter()
        try:
            ref = self._ref_features(reference, reference_text, scene_number, form)
        except ImageUnreadable as e:
            return Verdict.not_checked(
                self.name, f"The reference is {e}.", time.perf_counter() - t0
            )
        try:
            img = IMAGE_FEATURES.features(image)
        except ImageUnreadable as e:
            return Verdict.not_checked(self.name, f"The image is {e}.", time.perf_counter() - t0)
        c = compare(ref, img)
        seconds = time.perf_counter() - t0
        log.info(
            "[CONTINUITY] offline scene %s: score %d %s (%.0f ms)",
            scene_number,
            c.score,
            c.defects,
            seconds * 1000,
        )
        return Verdict(
            on_model=not c.defects,
            score=c.score,
            defects=c.defects,
            note=c.note,
            checker=self.name,
            seconds=round(seconds, 4),
        )

    async def check(
        self,
        reference: bytes | None,
        reference_text: str,
        image: bytes,
        scene_number: int = 0,
        *,
        form: str = "",
    ) -> Verdict:
        return await asyncio.to_thread(
            self.check_sync, reference, reference_text, image, scene_number, form
        )
