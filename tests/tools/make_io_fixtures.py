#!/usr/bin/python3
"""Reference data for tests/io: .npy files written by NumPy and .safetensors
files written byte by byte (struct + json, as the format spec says; the
`safetensors` package is not installed), with the expected float32 values
converted by NumPy/PyTorch; and a checker for the files mskx writes.

Usage: make_io_fixtures.py gen OUTDIR        writes fixtures + manifests
       make_io_fixtures.py check OUTDIR      checks the .npy files the C test listed in c_npy_manifest.txt
       make_io_fixtures.py check_st OUTDIR   checks c_out.safetensors against c_st_manifest.txt
"""
import json
import os
import struct
import sys

import numpy as np


def write_expect(outdir, name, arr32):
    with open(os.path.join(outdir, name), "wb") as f:
        f.write(np.ascontiguousarray(arr32, dtype="<f4").tobytes())


def gen_npy(outdir):
    rng = np.random.default_rng(1234)
    cases = [
        ("v1_2x3", (2, 3), (1, 0)),
        ("v1_vec", (7,), (1, 0)),
        ("v1_scalar", (), (1, 0)),
        ("v1_zero", (4, 0, 3), (1, 0)),
        ("v1_4d", (2, 3, 4, 5), (1, 0)),
        ("v2_3x5", (3, 5), (2, 0)),
        ("v2_scalar", (), (2, 0)),
        ("v3_2x2", (2, 2), (3, 0)),
    ]
    lines = []
    for name, shape, ver in cases:
        arr = (rng.standard_normal(shape) * 10).astype("<f4")
        if arr.size:
            arr.flat[0] = np.float32(1e-42)  # a subnormal survives untouched
        with open(os.path.join(outdir, name + ".npy"), "wb") as f:
            np.lib.format.write_array(f, arr, version=ver)
        write_expect(outdir, name + ".f32", arr)
        lines.append(" ".join([name, str(len(shape))] + [str(d) for d in shape]))
    with open(os.path.join(outdir, "npy_manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    # Valid NumPy files that mskx must refuse.
    np.save(os.path.join(outdir, "bad_f8.npy"), np.arange(6, dtype="<f8").reshape(2, 3))
    np.save(os.path.join(outdir, "bad_fortran.npy"), np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)))
    np.save(os.path.join(outdir, "bad_be.npy"), np.arange(4, dtype=">f4"))


def f16_special():
    vals = [0.0, -0.0, 1.0, -2.5, 65504.0, -65504.0, 2.0 ** -24, -(2.0 ** -24), 2.0 ** -14,
            1023 * 2.0 ** -24, 6.1e-5, np.inf, -np.inf, np.nan, 0.1, 3.140625]
    return np.array(vals, dtype=np.float16)


def gen_st(outdir):
    import torch  # only here: the check modes need no PyTorch start-up

    rng = np.random.default_rng(99)
    f32 = rng.standard_normal((2, 3)).astype("<f4")
    f16 = np.concatenate([f16_special(), rng.standard_normal(16).astype(np.float16)]).reshape(4, 8)
    bf_src = torch.from_numpy(np.concatenate([
        rng.standard_normal(10).astype(np.float32) * 100,
        np.array([0.0, -0.0, np.inf, -np.inf, 1e-40, 3e38], dtype=np.float32)]))
    bf16 = bf_src.to(torch.bfloat16)
    f64 = np.concatenate([rng.standard_normal(5), [1e300, -1e300, 1e-50, 0.1, 1.0 / 3.0]]).reshape(2, 5)
    scalar = np.array(42.5, dtype="<f4")
    empty = np.zeros((0, 3), dtype="<f4")
    # (name, dtype, shape, raw bytes, expected float32 by NumPy/PyTorch's own conversion)
    tensors = [
        ("features.conv0.weight", "F32", f32.shape, f32.tobytes(), f32),
        ("half.values", "F16", f16.shape, f16.astype("<f2").tobytes(), f16.astype(np.float32)),
        ("brain.float", "BF16", tuple(bf16.shape), bf16.view(torch.int16).numpy().astype("<i2").tobytes(),
         bf16.float().numpy()),
        ("double", "F64", f64.shape, f64.astype("<f8").tobytes(), f64.astype(np.float32)),
        ("scalar", "F32", (), scalar.tobytes(), scalar),
        ("empty", "F32", (0, 3), empty.tobytes(), empty),
    ]
    # Data stored in a different order from the header, with odd (2-byte) sizes
    # first so later tensors start unaligned.
    order = [1, 2, 0, 4, 3, 5]
    header, blobs, off = {"__metadata__": {"format": "pt", "note": "caf\u00e9 \"quoted\""}}, [], 0
    offsets = {}
    for i in order:
        offsets[i] = (off, off + len(tensors[i][3]))
        blobs.append(tensors[i][3])
        off += len(tensors[i][3])
    for i, (name, dt, shape, _, _) in enumerate(tensors):
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": list(offsets[i])}
    hj = json.dumps(header).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(os.path.join(outdir, "ref.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
    lines = []
    for i, (name, dt, shape, _, exp) in enumerate(tensors):
        write_expect(outdir, "st_%d.f32" % i, exp)
        lines.append(" ".join([name, str(len(shape))] + [str(d) for d in shape]))
    with open(os.path.join(outdir, "st_manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def fail(msg):
    print("CHECK FAILED: " + msg)
    sys.exit(1)


def check_npy(outdir):
    for line in open(os.path.join(outdir, "c_npy_manifest.txt")):
        parts = line.split()
        name, shape = parts[0], tuple(int(x) for x in parts[2:])
        path = os.path.join(outdir, name + ".npy")
        raw = open(path, "rb").read()
        if raw[6:8] != b"\x01\x00":
            fail("%s: version %r, want 1.0" % (name, raw[6:8]))
        hlen = struct.unpack("<H", raw[8:10])[0]
        if (10 + hlen) % 64 != 0 or raw[10 + hlen - 1:10 + hlen] != b"\n":
            fail("%s: header not padded to 64 bytes / not newline-terminated" % name)
        arr = np.load(path, allow_pickle=False)
        want = np.fromfile(os.path.join(outdir, name + ".raw"), dtype="<f4").reshape(shape)
        if arr.dtype != np.dtype("<f4") or arr.shape != shape:
            fail("%s: numpy sees dtype %s shape %s, want <f4 %s" % (name, arr.dtype, arr.shape, shape))
        diff = float(np.max(np.abs(arr - want))) if arr.size else 0.0
        print("%s: shape %s max abs diff %g" % (name, arr.shape, diff))
        if not np.array_equal(arr.view(np.uint32), want.view(np.uint32)):
            fail("%s: values differ" % name)


def check_st(outdir):
    raw = open(os.path.join(outdir, "c_out.safetensors"), "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    if (8 + n) % 8 != 0:
        fail("data section does not start 8-byte aligned")
    text = raw[8:8 + n].decode("utf-8")
    if text.rstrip(" ") != text.rstrip() or len(text) - len(text.rstrip(" ")) >= 8:
        fail("header padding is not 0-7 spaces")
    hdr = json.loads(text)
    data = raw[8 + n:]
    want_meta = {}
    want = []
    for line in open(os.path.join(outdir, "c_st_manifest.txt"), encoding="utf-8"):
        parts = line.rstrip("\n").split("\t")
        if parts[0] == "meta":
            want_meta[parts[1]] = parts[2]
        else:
            want.append((parts[1], tuple(int(x) for x in parts[2].split()) if parts[2] else (), parts[3]))
    if hdr.get("__metadata__", {}) != want_meta:
        fail("metadata %r, want %r" % (hdr.get("__metadata__"), want_meta))
    names = [k for k in hdr if k != "__metadata__"]
    if names != [w[0] for w in want]:
        fail("header order %r, want %r" % (names, [w[0] for w in want]))
    end = 0
    for name, shape, rawfile in want:
        t = hdr[name]
        b, e = t["data_offsets"]
        if t["dtype"] != "F32" or tuple(t["shape"]) != shape or b != end or e - b != 4 * int(np.prod(shape)):
            fail("%s: entry %r does not match shape %s" % (name, t, shape))
        end = e
        got = np.frombuffer(data[b:e], dtype="<f4").reshape(shape)
        exp = np.fromfile(os.path.join(outdir, rawfile), dtype="<f4").reshape(shape)
        diff = float(np.max(np.abs(got - exp))) if got.size else 0.0
        print("%s: shape %s max abs diff %g" % (name, shape, diff))
        if not np.array_equal(got.view(np.uint32), exp.view(np.uint32)):
            fail("%s: values differ" % name)
    if end != len(data):
        fail("data section is %d bytes, tensors cover %d" % (len(data), end))


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("gen", "check", "check_st"):
        print(__doc__)
        sys.exit(2)
    mode, outdir = sys.argv[1], sys.argv[2]
    os.makedirs(outdir, exist_ok=True)
    if mode == "gen":
        with np.errstate(over="ignore"):
            gen_npy(outdir)
            gen_st(outdir)
    elif mode == "check":
        check_npy(outdir)
    else:
        check_st(outdir)
    print("OK")


if __name__ == "__main__":
    main()
