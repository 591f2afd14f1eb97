#!/usr/bin/env python3
"""gen_shapes.py - a deterministic shapes image-caption set for CLIP training
and an honest zero-shot test.

usage: gen_shapes.py --out DIR --n N [--size 32] [--seed S] [--test-share X]
                     [--grid FILE] [--grid-scale K] [--level L] [--jobs J]

Renders N RGB PNG images (standard library only: zlib + struct) of one shape
each and writes

  DIR/images/000000.png ...
  DIR/train.jsonl  {"image": "images/000000.png",
                    "caption": "a photo of a small red circle",
                    "shape": "circle", "color": "red", "size": "small",
                    "position": "left", "background": "gradient navy teal",
                    "unseen": false}
  DIR/test.jsonl   the same fields; "unseen": true for the held-out
                   combinations below, false for a share of seen ones
  DIR/meta.json    the label sets, the held-out list, the caption template,
                   the counts

Shapes (8): circle, square, triangle, star, cross, diamond, heart, hexagon.
Colours (8): red, green, blue, yellow, purple, orange, white, black (each
jittered by up to +-12 per channel).
Sizes: small (the shape fits a circle of radius 0.17-0.21 of the image
side) and large (0.32-0.38).
Positions: a small shape is centred at left (0.28, 0.5), right (0.72, 0.5),
top (0.5, 0.28), bottom (0.5, 0.72) or center (0.5, 0.5) of the image, a
large one at the center; each with a jitter of up to 0.04 of the side. The
shape stays inside the image and the four corner pixels are always
background. Shapes other than the circle are turned by up to 10 degrees.
Backgrounds: a solid colour, a gradient between two colours (horizontal,
vertical or diagonal), or a solid colour with light noise (+-10 per pixel),
from a palette of 12 background colours that are not shape colours, each
at least 110 (RGB distance) from the shape's colour (for a gradient, every
colour between its two ends). Edges are anti-aliased
(4x4 samples on the pixels the outline crosses).

Held-out colour-shape combinations (never in train.jsonl; they make up the
"unseen" part of test.jsonl), one per colour and one per shape, so every
colour and every shape is still seen in training with 7 partners:
  red triangle, green star, blue heart, yellow cross, purple circle,
  orange square, white hexagon, black diamond.

The combination of image i is drawn uniformly from the 64, so about 1/8 of
the images are unseen combinations (all in test); a seen image goes to test
with probability --test-share (default 0.1), else to train.

Zero-shot test: classify each test image among the 128 prompts
"a photo of a {size} {color} {shape}" (or among the 64 colour-shape prompts
for one size) and report accuracy separately on "unseen": true (the honest
number) and "unseen": false images; shape-only and colour-only accuracy
tell what failed.

Determinism: image i is drawn from its own random.Random("shapes:S:i")
(str seeding is sha512-based and has been stable since Python 3.2) with
only random(), choice(), randrange() and getrandbits(), so its pixels and
labels do not depend on N or on the Python version, and a smaller N gives a
prefix of a larger set. The PNG bytes are those of the zlib library in use
(the same on one machine; another zlib version may compress the same
pixels to other bytes).
"""
import argparse
import json
import math
import os
import random
import struct
import sys
import time
import zlib

SHAPES = ("circle", "square", "triangle", "star", "cross", "diamond", "heart", "hexagon")
COLORS = {"red": (220, 30, 30), "green": (30, 170, 50), "blue": (30, 70, 220),
          "yellow": (240, 220, 30), "purple": (140, 50, 180), "orange": (245, 140, 20),
          "white": (250, 250, 250), "black": (15, 15, 15)}
COLOR_NAMES = tuple(COLORS)
SIZES = ("small", "large")
POSITIONS = {"left": (0.28, 0.5), "right": (0.72, 0.5), "top": (0.5, 0.28),
             "bottom": (0.5, 0.72), "center": (0.5, 0.5)}
POSITION_NAMES = tuple(POSITIONS)
BACKGROUNDS = {"light gray": (200, 200, 200), "dark gray": (70, 70, 70),
               "beige": (225, 210, 175), "sky": (150, 200, 235), "mint": (170, 225, 190),
               "pink": (240, 180, 200), "navy": (25, 35, 80), "brown": (110, 75, 45),
               "teal": (40, 130, 130), "lavender": (200, 185, 230), "cream": (250, 245, 220),
               "olive": (120, 125, 50)}
BACKGROUND_NAMES = tuple(BACKGROUNDS)
HELDOUT = (("red", "triangle"), ("green", "star"), ("blue", "heart"), ("yellow", "cross"),
           ("purple", "circle"), ("orange", "square"), ("white", "hexagon"),
           ("black", "diamond"))
CAPTION = "a photo of a {size} {color} {shape}"
MIN_BG_DISTANCE = 110.0
COLOR_JITTER = 12
NOISE = 10


# --- shapes in unit coordinates (x right, y down; each fits the unit circle) ---
def _circle(x, y):
    return x * x + y * y <= 1.0


def _square(x, y):
    return abs(x) <= 0.72 and abs(y) <= 0.72


def _triangle(x, y):  # pointing up, vertices on the unit circle
    return y <= 0.5 and 1.7320508 * abs(x) - y <= 1.0


_STAR_IN = 0.42
_STAR_IX = _STAR_IN * math.cos(math.pi / 5)
_STAR_IY = _STAR_IN * math.sin(math.pi / 5)
_TWO_PI_5 = 2 * math.pi / 5


def _star(x, y):  # five points, one up
    rho = math.hypot(x, y)
    if rho > 1.0:
        return False
    if rho <= _STAR_IN * 0.8:
        return True
    t = math.atan2(x, -y) % _TWO_PI_5
    if t > math.pi / 5:
        t = _TWO_PI_5 - t
    px, py = rho * math.cos(t), rho * math.sin(t)
    # inside of the edge from the point (1, 0) to the inner corner
    return (_STAR_IX - 1.0) * py - _STAR_IY * (px - 1.0) >= 0.0


def _cross(x, y):
    ax, ay = abs(x), abs(y)
    return (ax <= 0.3 and ay <= 0.95) or (ay <= 0.3 and ax <= 0.95)


def _diamond(x, y):
    return abs(x) / 0.68 + abs(y) <= 1.0


def _heart(x, y):
    hx, hy = x * 1.25, 0.25 - y * 1.25
    q = hx * hx + hy * hy - 1.0
    return q * q * q - hx * hx * hy * hy * hy <= 0.0


def _hexagon(x, y):
    ay = abs(y)
    return ay <= 0.8660254 and 1.7320508 * abs(x) + ay <= 1.7320508


INSIDE = {"circle": _circle, "square": _square, "triangle": _triangle, "star": _star,
          "cross": _cross, "diamond": _diamond, "heart": _heart, "hexagon": _hexagon}


# --- PNG ---------------------------------------------------------------------------
def png_bytes(width, height, rows, level=6):
    """An 8-bit RGB PNG; rows: height bytes-like objects of 3*width bytes."""
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    raw = b"".join(b"\x00" + bytes(r) for r in rows)  # filter 0 on every row
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, level))
            + chunk(b"IEND", b""))


# --- one image ----------------------------------------------------------------------
def _dist(c1, c2):
    return math.sqrt(sum((a - b) ** 2 for a, b in zip(c1, c2)))


def _seg_dist(p, a, b):
    """RGB distance from p to the segment a-b (the colours of a gradient)."""
    ab = [y - x for x, y in zip(a, b)]
    den = sum(v * v for v in ab)
    t = 0.0 if den == 0 else max(0.0, min(1.0, sum((q - x) * v for q, x, v in zip(p, a, ab)) / den))
    return _dist(p, [x + t * v for x, v in zip(a, ab)])


def _bg_choices(rgb):
    return [n for n in BACKGROUND_NAMES if _dist(BACKGROUNDS[n], rgb) >= MIN_BG_DISTANCE]


def sample(r):
    """The labels and the drawing parameters of one image."""
    color = r.choice(COLOR_NAMES)
    shape = r.choice(SHAPES)
    size = r.choice(SIZES)
    pos = r.choice(POSITION_NAMES) if size == "small" else "center"
    radius = (0.17 + 0.04 * r.random()) if size == "small" else (0.32 + 0.06 * r.random())
    px, py = POSITIONS[pos]
    px += (r.random() * 2 - 1) * 0.04
    py += (r.random() * 2 - 1) * 0.04
    angle = 0.0 if shape == "circle" else (r.random() * 2 - 1) * math.radians(10)
    base = COLORS[color]
    rgb = tuple(min(255, max(0, c + r.randrange(-COLOR_JITTER, COLOR_JITTER + 1)))
                for c in base)
    ok = _bg_choices(base)
    kind = r.choice(("solid", "gradient", "noise"))
    if kind == "gradient":
        b1 = r.choice(ok)
        # every colour along the gradient is far from the shape's colour
        ends = [b for b in ok if b != b1 and
                _seg_dist(base, BACKGROUNDS[b1], BACKGROUNDS[b]) >= MIN_BG_DISTANCE]
        if ends:
            bg = (kind, b1, r.choice(ends), r.choice(("horizontal", "vertical", "diagonal")))
        else:
            bg = ("solid", b1)
    else:
        bg = (kind, r.choice(ok))
    return {"shape": shape, "color": color, "size": size, "position": pos,
            "radius": radius, "cx": px, "cy": py, "angle": angle, "rgb": rgb, "bg": bg}


def _interleave(rc, gc, bc):
    out = bytearray(3 * len(rc))
    out[0::3], out[1::3], out[2::3] = rc, gc, bc
    return out


def _background(p, n, r):
    kind = p["bg"][0]
    if kind == "gradient":
        c1, c2 = BACKGROUNDS[p["bg"][1]], BACKGROUNDS[p["bg"][2]]
        direction = p["bg"][3]
        den = max(1, n - 1)
        # the colours along the gradient: n steps, or 2n-1 for the diagonal
        steps = 2 * n - 1 if direction == "diagonal" else n
        ramp = bytearray()
        for k in range(steps):
            t = k / (2 * den) if direction == "diagonal" else k / den
            ramp += bytes(int(a + (b - a) * t + 0.5) for a, b in zip(c1, c2))
        if direction == "horizontal":
            return [bytearray(ramp) for _ in range(n)]
        if direction == "vertical":
            return [bytearray(ramp[3 * y:3 * y + 3] * n) for y in range(n)]
        return [bytearray(ramp[3 * y:3 * (y + n)]) for y in range(n)]
    c = BACKGROUNDS[p["bg"][1]]
    if kind == "solid":
        return [bytearray(bytes(c) * n) for _ in range(n)]
    # light noise: one random byte per pixel, the same offset in -NOISE..NOISE
    # on the three channels
    noise = r.getrandbits(8 * n * n).to_bytes(n * n, "little")
    tabs = [bytes(min(255, max(0, v + (b * (2 * NOISE + 1) >> 8) - NOISE)) for b in range(256))
            for v in c]
    chans = [noise.translate(t) for t in tabs]
    return [_interleave(*(ch[y * n:(y + 1) * n] for ch in chans)) for y in range(n)]


def render(p, n, r):
    """The image rows (n bytearrays of 3n bytes) for parameters p."""
    rows = _background(p, n, r)
    inside = INSIDE[p["shape"]]
    rad = p["radius"] * n
    cx, cy = p["cx"] * n, p["cy"] * n
    ca, sa = math.cos(-p["angle"]), math.sin(-p["angle"])
    inv = 1.0 / rad

    def ins(x, y):  # image coordinates (pixel centres at +0.5)
        dx, dy = x - cx, y - cy
        return inside((dx * ca - dy * sa) * inv, (dx * sa + dy * ca) * inv)

    x0 = max(0, int(cx - rad) - 1)
    x1 = min(n - 1, int(cx + rad) + 1)
    y0 = max(0, int(cy - rad) - 1)
    y1 = min(n - 1, int(cy + rad) + 1)
    # inside-ness at the pixel corners and centres of the bounding box
    w = x1 - x0 + 2
    corner = [[ins(x0 + i, y0 + j) for i in range(w)] for j in range(y1 - y0 + 2)]
    fr, fg, fb = p["rgb"]
    sub = (0.125, 0.375, 0.625, 0.875)
    for j in range(y1 - y0 + 1):
        y = y0 + j
        row = rows[y]
        c0, c1 = corner[j], corner[j + 1]
        for i in range(x1 - x0 + 1):
            x = x0 + i
            a, b, c, d = c0[i], c0[i + 1], c1[i], c1[i + 1]
            mid = ins(x + 0.5, y + 0.5)
            if a and b and c and d and mid:
                cov = 1.0
            elif not (a or b or c or d or mid):
                continue
            else:
                cov = sum(ins(x + sx, y + sy) for sy in sub for sx in sub) / 16.0
                if cov == 0.0:
                    continue
            k = 3 * x
            if cov >= 1.0:
                row[k], row[k + 1], row[k + 2] = fr, fg, fb
            else:
                row[k] = int(row[k] + (fr - row[k]) * cov + 0.5)
                row[k + 1] = int(row[k + 1] + (fg - row[k + 1]) * cov + 0.5)
                row[k + 2] = int(row[k + 2] + (fb - row[k + 2]) * cov + 0.5)
    return rows


def image(seed, i, n):
    """(labels, rows) of image i: its own generator, independent of N."""
    r = random.Random(f"shapes:{seed}:{i}")
    p = sample(r)
    rows = render(p, n, r)
    split_draw = r.random()
    return p, rows, split_draw


def contact_sheet(images, n, scale=2, cols=8, gutter=2):
    """One PNG's rows from up to cols*cols images (lists of rows)."""
    tile = n * scale + gutter
    rows_n = (len(images) + cols - 1) // cols
    width, height = cols * tile + gutter, rows_n * tile + gutter
    grey = bytes((128, 128, 128))
    sheet = [bytearray(grey * width) for _ in range(height)]
    for k, img in enumerate(images):
        ox = gutter + (k % cols) * tile
        oy = gutter + (k // cols) * tile
        for y in range(n):
            src = img[y]
            line = bytearray()
            for x in range(n):
                line += bytes(src[3 * x:3 * x + 3]) * scale
            for s in range(scale):
                sheet[oy + y * scale + s][3 * ox:3 * ox + len(line)] = line
    return width, height, sheet


def _make(job):
    """Render and write image i; returns its record, split draw and, for the
    first 64, its rows (for the contact sheet)."""
    out, seed, i, size, level = job
    p, rows, u = image(seed, i, size)
    rel = f"images/{i:06d}.png"
    with open(os.path.join(out, rel), "wb") as f:
        f.write(png_bytes(size, size, rows, level))
    bg = " ".join(p["bg"][:3] if p["bg"][0] == "gradient" else p["bg"])
    rec = {"image": rel,
           "caption": CAPTION.format(size=p["size"], color=p["color"], shape=p["shape"]),
           "shape": p["shape"], "color": p["color"], "size": p["size"],
           "position": p["position"], "background": bg,
           "unseen": (p["color"], p["shape"]) in HELDOUT}
    return rec, u, (rows if i < 64 else None)


def generate(out, n_images, size=32, seed=1, test_share=0.1, grid=None, grid_scale=2,
             level=6, jobs=1, log=sys.stderr):
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    train, test, first = [], [], []
    t0 = time.perf_counter()
    work = ((out, seed, i, size, level) for i in range(n_images))
    if jobs > 1:
        import multiprocessing
        with multiprocessing.Pool(jobs) as pool:
            done = list(pool.imap(_make, work, chunksize=64))
    else:
        done = map(_make, work)
    for rec, u, rows in done:
        (test if rec["unseen"] or u < test_share else train).append(rec)
        if rows is not None:
            first.append(rows)
    dt = time.perf_counter() - t0
    for name, recs in (("train.jsonl", train), ("test.jsonl", test)):
        with open(os.path.join(out, name), "w", encoding="utf-8") as f:
            for rec in recs:
                f.write(json.dumps(rec) + "\n")
    meta = {"n": n_images, "size": size, "seed": seed, "test_share": test_share,
            "shapes": list(SHAPES), "colors": {k: list(v) for k, v in COLORS.items()},
            "sizes": list(SIZES), "positions": list(POSITION_NAMES),
            "heldout": [list(h) for h in HELDOUT], "caption": CAPTION,
            "prompts": [CAPTION.format(size=s, color=c, shape=h)
                        for s in SIZES for c in COLOR_NAMES for h in SHAPES],
            "train": len(train), "test": len(test),
            "test_unseen": sum(1 for t in test if t["unseen"])}
    with open(os.path.join(out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    if grid and first:
        w, h, sheet = contact_sheet(first, size, grid_scale)
        with open(grid, "wb") as f:
            f.write(png_bytes(w, h, sheet, level))
    if log is not None:
        print(f"{n_images} images {size}x{size}: train {len(train)}, test {len(test)} "
              f"({meta['test_unseen']} unseen) in {dt:.2f} s, "
              f"{n_images / max(dt, 1e-9):.0f} images/s with {jobs} job(s)", file=log)
    return meta


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--test-share", type=float, default=0.1)
    ap.add_argument("--grid")
    ap.add_argument("--grid-scale", type=int, default=2)
    ap.add_argument("--level", type=int, default=6, help="zlib level (0-9)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="worker processes (the output does not depend on it)")
    a = ap.parse_args(argv)
    if a.n < 0 or not 8 <= a.size <= 1024 or not 0 <= a.test_share <= 1 \
            or not 0 <= a.level <= 9 or a.grid_scale < 1 or a.jobs < 1:
        ap.error("need --n >= 0, --size in [8, 1024], --test-share in [0, 1], "
                 "--level in [0, 9], --grid-scale >= 1, --jobs >= 1")
    generate(a.out, a.n, a.size, a.seed, a.test_share, a.grid, a.grid_scale, a.level, a.jobs)


if __name__ == "__main__":
    main()
