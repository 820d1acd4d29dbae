#!/usr/bin/python3
"""Reference resampling for tests/data/test_preprocess.c and test_augment.c.

  image_ref.py resize IN W H OW OH OUT [IN W H OW OH OUT ...]
      IN: W*H uint8 pixels (several jobs per call spare the torch import). Writes float32 (OH, OW) images in [0, 1] to
      OUT.exact  numpy float64: exact box filter (area) on each shrinking or
                 equal axis, computed by differencing the integral of the
                 piecewise-constant signal; half-pixel linear interpolation
                 (np.interp) on each enlarging axis.
      OUT.pil    Pillow mode 'F': BOX on shrinking axes, BILINEAR on enlarging
                 ones, one axis at a time (equals the exact box only for
                 integer ratios: PIL weighs whole pixels).
      OUT.torch  torch.nn.functional.interpolate per axis: mode 'area'
                 (adaptive average pooling, again integer ratios only) or
                 'bilinear', align_corners=False, antialias=False.
  image_ref.py affine IN S ANGLE_CCW TX TY SCALE OUT [ANGLE_CCW TX TY SCALE OUT ...]
      IN: S*S float32. Writes each OUT: torchvision.transforms.functional.affine
      (bilinear, zero fill) rotating ANGLE_CCW degrees counter-clockwise,
      scaling by SCALE and translating by (TX, TY) pixels.
"""
import sys

import numpy as np


def box_axis(a, out, axis):
    """Exact area average along axis: mean of the signal over [i*r, (i+1)*r)."""
    a = np.moveaxis(a, axis, -1)
    n = a.shape[-1]
    r = n / out
    integral = np.concatenate([np.zeros(a.shape[:-1] + (1,)), np.cumsum(a, axis=-1)], axis=-1)
    knots = np.arange(n + 1, dtype=np.float64)
    edges = np.arange(out + 1, dtype=np.float64) * r
    f = np.apply_along_axis(lambda row: np.interp(edges, knots, row), -1, integral)
    return np.moveaxis((f[..., 1:] - f[..., :-1]) / r, -1, axis)


def linear_axis(a, out, axis):
    """Half-pixel linear interpolation along axis; np.interp clamps at the ends."""
    a = np.moveaxis(a, axis, -1)
    n = a.shape[-1]
    x = (np.arange(out) + 0.5) * (n / out) - 0.5
    res = np.apply_along_axis(lambda row: np.interp(x, np.arange(n, dtype=np.float64), row), -1, a)
    return np.moveaxis(res, -1, axis)


def exact(img, ow, oh):
    a = img.astype(np.float64)
    a = box_axis(a, ow, 1) if ow <= a.shape[1] else linear_axis(a, ow, 1)
    a = box_axis(a, oh, 0) if oh <= a.shape[0] else linear_axis(a, oh, 0)
    return a / 255.0


def pil(img, ow, oh):
    from PIL import Image

    im = Image.fromarray(img.astype(np.float32), mode="F")
    h, w = img.shape
    im = im.resize((ow, h), Image.BOX if ow <= w else Image.BILINEAR)
    im = im.resize((ow, oh), Image.BOX if oh <= h else Image.BILINEAR)
    return np.asarray(im, dtype=np.float64) / 255.0


def torch_ref(img, ow, oh):
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(img.astype(np.float64))[None, None]
    h, w = img.shape
    for size, grows in (((h, ow), ow > w), ((oh, ow), oh > h)):
        if grows:
            t = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=False)
        else:
            t = F.interpolate(t, size=size, mode="area")
    return t[0, 0].numpy() / 255.0


def main(argv):
    if argv[1] == "resize":
        for job in range(2, len(argv), 6):
            path, (w, h, ow, oh), out = argv[job], (int(v) for v in argv[job + 1:job + 5]), argv[job + 5]
            img = np.fromfile(path, dtype=np.uint8).reshape(h, w)
            for name, fn in (("exact", exact), ("pil", pil), ("torch", torch_ref)):
                fn(img, ow, oh).astype("<f4").tofile(out + "." + name)
    elif argv[1] == "affine":
        import torch
        import torchvision.transforms.functional as TF

        s = int(argv[3])
        img = torch.from_numpy(np.fromfile(argv[2], dtype="<f4").reshape(1, s, s).copy())
        for job in range(4, len(argv), 5):
            angle, tx, ty, scale = (float(v) for v in argv[job:job + 4])
            # torchvision's affine angle is clockwise.
            out = TF.affine(img, angle=-angle, translate=[tx, ty], scale=scale, shear=[0.0, 0.0],
                            interpolation=TF.InterpolationMode.BILINEAR, fill=None)
            out[0].numpy().astype("<f4").tofile(argv[job + 4])
    else:
        sys.exit("unknown mode " + argv[1])


if __name__ == "__main__":
    main(sys.argv)
