#!/usr/bin/env python3
"""Writes Pillow's results for the FastAA ops on random images, as JSON for the optional
test FastAAOps.MatchPillowReferenceWhenGiven (tests/data/fastaa_test.cpp):

    python3 tests/data/fastaa_pil_reference.py /tmp/pil_ref.json
    NORMEXP_PIL_REFERENCE=/tmp/pil_ref.json build/tests/normexp_augment_tests \
        --gtest_filter='*Pillow*'

Each op is called as Fast AutoAugment's reference calls PIL (magnitude = level * (high - low)
+ low from configs/augment/fastaa_cifar10_policy.json, geometric magnitudes mirrored at
random). Needs Pillow and NumPy; not part of the build.
"""
import json
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

POLICY = Path(__file__).resolve().parents[2] / "configs/augment/fastaa_cifar10_policy.json"


def pil_op(name, img, v):
    w, h = img.size
    if name == "ShearX":
        return img.transform(img.size, Image.AFFINE, (1, v, 0, 0, 1, 0))
    if name == "ShearY":
        return img.transform(img.size, Image.AFFINE, (1, 0, 0, v, 1, 0))
    if name == "TranslateX":
        return img.transform(img.size, Image.AFFINE, (1, 0, v * w, 0, 1, 0))
    if name == "TranslateY":
        return img.transform(img.size, Image.AFFINE, (1, 0, 0, 0, 1, v * h))
    if name == "Rotate":
        return img.rotate(v)
    if name == "AutoContrast":
        return ImageOps.autocontrast(img)
    if name == "Invert":
        return ImageOps.invert(img)
    if name == "Equalize":
        return ImageOps.equalize(img)
    if name == "Solarize":
        return ImageOps.solarize(img, v)
    if name == "Posterize":
        return ImageOps.posterize(img, max(1, int(v)))
    enhance = {"Contrast": ImageEnhance.Contrast, "Color": ImageEnhance.Color,
               "Brightness": ImageEnhance.Brightness, "Sharpness": ImageEnhance.Sharpness}
    return enhance[name](img).enhance(v)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "pil_reference.json"
    ranges = json.loads(POLICY.read_text())["op_ranges"]
    rng = np.random.default_rng(0)
    random.seed(0)
    cases = []
    for name, (lo, hi) in sorted(ranges.items()):
        if name == "Cutout":  # random placement; tested by hand in fastaa_test.cpp
            continue
        for i in range(40):
            h, w = [(9, 11), (16, 16), (32, 32), (7, 20)][i % 4]
            if i % 3 == 0:  # low contrast, narrow histograms
                a = rng.integers(40, 90, size=(h, w, 3), dtype=np.uint8)
            else:
                a = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            level = random.random()
            v = level * (hi - lo) + lo
            if name in ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate") and random.random() > 0.5:
                v = -v
            b = np.asarray(pil_op(name, Image.fromarray(a, "RGB"), v))
            cases.append({"op": name, "magnitude": v, "shape": [3, h, w],
                          "input": a.transpose(2, 0, 1).reshape(-1).tolist(),
                          "output": b.transpose(2, 0, 1).reshape(-1).tolist()})
    Path(out).write_text(json.dumps({"pillow": Image.__version__ if hasattr(Image, "__version__") else "?",
                                     "cases": cases}))
    print(f"wrote {len(cases)} cases to {out}")


if __name__ == "__main__":
    main()
