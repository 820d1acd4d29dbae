#!/usr/bin/python3
"""predict_study.py: the Python twin of predict_study.c. Loads a model (file,
per-part bundle or ensemble) with the mskx package (python/mskx, over
libmskx.so) and predicts one study from the image files given.

    PYTHONPATH=python MSKX_LIBRARY=build/libmskx.so \\
        examples/predict_study.py model.safetensors [--part XR_WRIST] image1.png image2.png ..."""
import sys

import mskx


def main(argv):
    if len(argv) < 3:
        print("usage: %s MODEL [--part XR_NAME] IMAGE..." % argv[0], file=sys.stderr)
        return 2
    part, images = None, argv[2:]
    if images[0] == "--part" and len(images) > 1:
        part, images = images[1], images[2:]
    if not images:
        print("%s: no images given" % argv[0], file=sys.stderr)
        return 2
    try:
        with mskx.Model(argv[1]) as model:
            info = model.info
            print("model: %s (%s, arch %s, libmskx %s)" % (info["path"], info["kind"], info["arch"],
                                                           info["library_version"]))
            r = model.predict(images, part=part, cam=True)
    except mskx.Error as e:
        print("%s: %s" % (argv[0], e), file=sys.stderr)
        return 1
    print("study: probability %.6f, %s (threshold %.4f), part %s" % (r["probability"], r["decision"], r["threshold"],
                                                                     r["part"] or "unknown"))
    for im in r["images"]:
        cam = im["cam"]  # numpy (H, W) array, or array.array of H*W values without numpy
        flat = list(cam.reshape(-1)) if hasattr(cam, "reshape") else list(cam)
        peak = flat.index(max(flat))
        print("  %s: %.6f (map peak at x=%d, y=%d)" % (im["name"], im["probability"], peak % im["width"],
                                                       peak // im["width"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
