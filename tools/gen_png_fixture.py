#!/usr/bin/python3
"""Fixtures for the PNG/rounding tests (tests/test_image.c).

Run with Debian's python3 (numpy 1.24, Pillow 9.4):
    /usr/bin/python3 tools/gen_png_fixture.py data/png

Writes
  pil_rgb.png, pil_rgb.bin   a 23x17 RGB image encoded by Pillow (adaptive row
                             filters, so the decoder meets Sub/Up/Average/Paeth
                             rows made by another encoder) and its raw pixels
  pil_rgba.png, pil_rgba.bin a 9x5 RGBA image and its RGB pixels (alpha dropped)
  round_cases.json           float32 values and what diffusers' numpy_to_pil
                             makes of them: (x * 255).round().astype("uint8"),
                             including values whose float32 product is exactly
                             k + 0.5 (numpy rounds half to even)
"""
import json
import os
import sys

import numpy as np
from PIL import Image

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.RandomState(1234)

# RGB: a gradient plus noise plus a flat band, so every filter type wins somewhere
h, w = 17, 23
y, x = np.mgrid[0:h, 0:w]
img = np.stack([(x * 11) % 256, (y * 15) % 256, (x * y) % 256], axis=-1).astype(np.int64)
img[5:9] = rng.randint(0, 256, size=(4, w, 3))
img[12:14] = 200
img = img.astype(np.uint8)
Image.fromarray(img, "RGB").save(os.path.join(out, "pil_rgb.png"), optimize=True)
img.tofile(os.path.join(out, "pil_rgb.bin"))

rgba = rng.randint(0, 256, size=(5, 9, 4)).astype(np.uint8)
Image.fromarray(rgba, "RGBA").save(os.path.join(out, "pil_rgba.png"))
rgba[:, :, :3].copy().tofile(os.path.join(out, "pil_rgba.bin"))

# rounding cases
vals = [0.0, 1.0, 0.5, 0.25, 0.125, 0.3, 0.7, 1.0 / 255, 0.999, 0.001953125, 0.005859375]
f = np.float32
# floats whose product with 255 rounds to exactly k + 0.5 in float32
for k in range(0, 255):
    t = (k + 0.5) / 255.0
    c = f(t)
    for d in range(-3, 4):
        v = c
        for _ in range(abs(d)):
            v = np.nextafter(v, f(2) if d > 0 else f(-1))
        p = f(v) * f(255)
        if p == f(k + 0.5) and 0 <= v <= 1 and len(vals) < 80:
            vals.append(float(v))
vals += list(map(float, rng.rand(40).astype(f)))
arr = np.array(vals, dtype=f)
u8 = (arr * 255).round().astype("uint8")
with open(os.path.join(out, "round_cases.json"), "w") as fh:
    json.dump({"x": [float(v) for v in arr], "u8": [int(v) for v in u8],
               "made_by": "numpy %s: (x * 255).round().astype('uint8') on float32" % np.__version__}, fh, indent=0)
print("half cases:", sum(1 for v in arr if f(v) * f(255) == np.floor(f(v) * f(255)) + f(0.5)))
