"""Tests of the Python package python/mskx over libmskx.so (run by
tests/python/python_test.sh, which builds the fixtures and sets MSKX_FIX).

Every prediction is compared with `mskx predict --json` (or with the same
pixels as a file) for exact equality: the binding adds no arithmetic.
Prints one PASS/FAIL line per test for tests/run."""
import json
import os
import subprocess
import sys
import threading
import unittest

import numpy as np
from PIL import Image

import mskx

FIX = os.environ["MSKX_FIX"]
BIN = os.environ["MSKX_BIN"]
W = os.path.join(FIX, "MURA/valid/XR_WRIST/patient1/study1_positive")
H = os.path.join(FIX, "MURA/valid/XR_HAND/patient2/study1_negative")
A = os.path.join(FIX, "a.safetensors")
BUNDLE = os.path.join(FIX, "bundle.json")
ENS = os.path.join(FIX, "ens.json")
THREADS = 1  # the CLI runs with the same count: results are deterministic per thread count


def cli(model, *paths):
    out = subprocess.run([BIN, "predict", "--model", model, "--threads", str(THREADS), "--json", *paths],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def images_of(study):
    return [os.path.join(study, f) for f in ("image1.png", "image2.png", "image10.png")] if study == W else \
        [os.path.join(study, f) for f in ("image1.png", "image2.png")]


def grey(path):
    return np.asarray(Image.open(path).convert("L"), dtype=np.uint8)


class Bindings(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = mskx.Model(A, threads=THREADS)

    @classmethod
    def tearDownClass(cls):
        cls.m.close()

    def assert_same(self, got, ref, names=True):
        self.assertEqual(got["probability"], ref["probability"])  # exact: bit for bit
        self.assertEqual(got["abnormal"], ref["abnormal"])
        self.assertEqual(got["decision"], ref["decision"])
        self.assertEqual(got["threshold"], ref["threshold"])
        self.assertEqual(got["n_images"], ref["n_images"])
        self.assertEqual([i["probability"] for i in got["images"]], [i["probability"] for i in ref["images"]])
        if names:
            self.assertEqual([i["name"] for i in got["images"]], [i.get("path", i.get("name")) for i in ref["images"]])

    def test_files_equal_cli(self):
        ref = cli(A, W, H, os.path.join(FIX, "single.png"))
        for study, r in zip((W, H), ref):
            got = self.m.predict(images_of(study))
            self.assert_same(got, r)
            self.assertEqual(got["part"], r["part"])
            self.assertEqual(got["model"], r["model"])
        got = self.m.predict(os.path.join(FIX, "single.png"))  # one image, not a list
        self.assert_same(got, ref[2])
        self.assertIsNone(got["part"])

    def test_bundle_and_ensemble_equal_cli(self):
        with mskx.Model(BUNDLE, threads=THREADS) as b:
            self.assertEqual(b.info["kind"], "bundle")
            for study, r in zip((W, H), cli(BUNDLE, W, H)):
                got = b.predict(images_of(study))
                self.assert_same(got, r)
                self.assertEqual(got["model"], r["model"])
            with self.assertRaises(mskx.Error) as cm:
                b.predict(os.path.join(FIX, "single.png"), part="XR_ELBOW")
            self.assertIn("no model for part XR_ELBOW", cm.exception.message)
        with mskx.Model(ENS, threads=THREADS) as e:
            r = cli(ENS, W)[0]
            got = e.predict(images_of(W))
            self.assert_same(got, r)
            self.assertEqual(got["member_probabilities"], r["member_probabilities"])

    def test_info(self):
        i = self.m.info
        self.assertEqual((i["kind"], i["arch"], i["size"], i["threshold"], i["n_members"]),
                         ("model", "densenet:growth=8,blocks=2-2,init=8,bn_size=2", 64, 0.5, 1))
        self.assertEqual(i["metadata"]["format"], "mskx-model-1")
        self.assertEqual(i["library_version"], mskx.library_version())
        self.assertEqual(self.m.threshold, 0.5)

    def test_arrays_8bit_grey_and_rgb(self):
        paths = images_of(W)
        ref = self.m.predict(paths)
        got = self.m.predict([grey(p) for p in paths], names=paths)
        self.assert_same(got, ref)
        self.assertEqual(self.m.predict([grey(p)[:, :, None] for p in paths])["probability"], ref["probability"])
        # Non-contiguous views are copied in C order.
        wide = np.zeros((64, 128), np.uint8)
        wide[:, ::2] = grey(paths[0])
        self.assertEqual(self.m.predict(wide[:, ::2])["probability"], self.m.predict(paths[0])["probability"])
        # RGB: the array and the RGB PNG file of the same pixels agree exactly.
        rgb = np.random.default_rng(5).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        f = os.path.join(FIX, "rgb.png")
        Image.fromarray(rgb, "RGB").save(f)
        self.assertEqual(self.m.predict(rgb)["probability"], self.m.predict(f)["probability"])

    def test_arrays_16bit(self):
        r = np.random.default_rng(6)
        g16 = r.integers(0, 65536, (64, 64), dtype=np.uint16)
        f = os.path.join(FIX, "g16.png")
        Image.fromarray(g16.astype(np.int32), "I").convert("I;16").save(f)
        self.assertEqual(np.asarray(Image.open(f), dtype=np.uint16).tolist(), g16.tolist())  # a true 16-bit PNG
        self.assertEqual(self.m.predict(g16)["probability"], self.m.predict(f)["probability"])
        # The reductions, written out independently in numpy (src/io/image.c rounds so).
        g8 = ((g16.astype(np.uint64) * 255 + 32767) // 65535).astype(np.uint8)
        self.assertEqual(self.m.predict(g16)["probability"], self.m.predict(g8)["probability"])
        rgb16 = r.integers(0, 65536, (64, 64, 3), dtype=np.uint16)
        c = rgb16.astype(np.uint64)
        l8 = (((299 * c[..., 0] + 587 * c[..., 1] + 114 * c[..., 2]) * 255 + 32767500) // 65535000).astype(np.uint8)
        self.assertEqual(self.m.predict(rgb16)["probability"], self.m.predict(l8)["probability"])
        self.assertNotEqual(self.m.predict(rgb16)["probability"], self.m.predict(g8)["probability"])
        big_endian = g16.astype(">u2")
        self.assertEqual(self.m.predict(big_endian)["probability"], self.m.predict(g16)["probability"])

    def test_no_numpy_buffers_and_encoded_bytes(self):
        p = images_of(W)[0]
        ref = self.m.predict(p)["probability"]
        raw = grey(p).tobytes()
        self.assertEqual(self.m.predict(memoryview(raw).cast("B", (64, 64)))["probability"], ref)
        self.assertEqual(self.m.predict(memoryview(bytearray(raw)).cast("B", (64, 64)))["probability"], ref)
        with open(p, "rb") as fh:
            enc = fh.read()
        got = self.m.predict([enc, bytearray(enc)], names=["a.png", "b.png"])
        self.assertEqual([i["probability"] for i in got["images"]], [ref, ref])
        self.assertEqual([i["name"] for i in got["images"]], ["a.png", "b.png"])

    def test_cam_and_overlay(self):
        paths = images_of(W)
        got = self.m.predict(paths, cam=True, overlay=True)
        arr = self.m.predict([grey(q) for q in paths], cam=True)
        for a, b in zip(got["images"], arr["images"]):
            self.assertEqual(a["cam"].shape, (64, 64))
            self.assertEqual(a["cam"].dtype, np.float32)
            self.assertTrue(float(a["cam"].min()) >= 0 and abs(float(a["cam"].max()) - 1) < 1e-6)
            self.assertTrue(np.array_equal(a["cam"], b["cam"]))
            self.assertEqual(a["overlay_png"][:8], b"\x89PNG\r\n\x1a\n")
        self.assertNotIn("cam", self.m.predict(paths)["images"][0])
        # A large image: maps and overlay at display size (longest side 1024), its own size reported.
        big = np.zeros((900, 1500), dtype=np.uint8)
        big[300:600, 500:1000] = 200
        im = self.m.predict([big], cam=True)["images"][0]
        self.assertEqual((im["width"], im["height"]), (1500, 900))
        self.assertEqual((im["cam_width"], im["cam_height"]), (1024, 614))
        self.assertEqual(im["cam"].shape, (614, 1024))

    def test_errors_are_exceptions(self):
        with self.assertRaises(mskx.Error) as cm:
            self.m.predict(os.path.join(FIX, "missing.png"))
        self.assertIn("missing.png", cm.exception.message)
        self.assertEqual(cm.exception.code, 2)
        with self.assertRaises(mskx.Error) as cm:
            self.m.predict(os.path.join(FIX, "corrupt.png"))
        self.assertIn("corrupt.png", str(cm.exception))
        self.assertEqual(cm.exception.code, 3)
        with self.assertRaises(mskx.Error) as cm:
            mskx.Model(os.path.join(FIX, "notes.txt"))
        self.assertIn("not an mskx model", cm.exception.message)
        with self.assertRaises(mskx.Error) as cm:
            mskx.Model(A, threads=-1)
        self.assertIn("threads", cm.exception.message)
        self.assertEqual(cm.exception.status, "invalid argument")
        with self.assertRaises(mskx.Error) as cm:
            mskx.Model(A, max_pixels=100).predict(images_of(W)[0])
        self.assertEqual(cm.exception.code, 7)
        with self.assertRaises(TypeError):
            self.m.predict(np.zeros((8, 8), np.float32))
        with self.assertRaises(ValueError):
            self.m.predict(np.zeros((8, 8, 2), np.uint8))
        with self.assertRaises(TypeError):
            self.m.predict([images_of(W)[0], grey(images_of(W)[0])])
        with self.assertRaises(ValueError):
            self.m.predict([])

    def test_threads_share_a_model(self):
        paths = [images_of(W), images_of(H), [os.path.join(FIX, "single.png")]]
        with mskx.Model(A, threads=1, max_contexts=4) as shared:
            want = [shared.predict(p)["probability"] for p in paths]
            got, errors = [[] for _ in range(4)], []

            def work(k):
                try:
                    for j in range(15):
                        got[k].append((j % 3, shared.predict(paths[(j + k) % 3])["probability"], (j + k) % 3))
                except Exception as ex:  # noqa: BLE001 - reported below
                    errors.append(ex)

            ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
        self.assertEqual(errors, [])
        self.assertEqual(sum(len(g) for g in got), 60)
        for g in got:
            for _, p, s in g:
                self.assertEqual(p, want[s])

    def test_memory_steady_over_1000_predictions(self):
        def rss_kib():
            with open("/proc/self/status") as fh:
                return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))

        img = grey(images_of(W)[0])
        def one(m, i):
            m.predict([img, img[::-1]] if i % 2 else img, cam=True, overlay=bool(i % 3))

        with mskx.Model(A, threads=1) as m:
            for i in range(100):  # the same mix first: one- and two-image plans are made once
                one(m, i)
            before = rss_kib()
            for i in range(1000):
                one(m, i)
            after = rss_kib()
        # A leak of one 64x64 map (16 KiB) per call would add 16 MB.
        self.assertLess(after - before, 2048, "RSS grew from %d to %d KiB" % (before, after))


class _Lines(unittest.TextTestResult):
    def addSuccess(self, test):
        super().addSuccess(test)
        print("PASS py_%s" % test._testMethodName, flush=True)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        print("FAIL py_%s: %s" % (test._testMethodName, str(err[1]).replace("\n", " ")[:300]), flush=True)

    def addError(self, test, err):
        super().addError(test, err)
        print("FAIL py_%s: %s: %s" % (test._testMethodName, err[0].__name__, str(err[1])[:300]), flush=True)


if __name__ == "__main__":
    r = unittest.main(argv=sys.argv[:1] + sys.argv[1:], testRunner=unittest.TextTestRunner(resultclass=_Lines),
                      exit=False).result
    sys.exit(0 if r.wasSuccessful() else 1)
