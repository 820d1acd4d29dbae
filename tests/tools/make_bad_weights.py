"""Writes weight files for the bad-input tests of `mskx forward`/`train`:
good.safetensors (a small torchvision DenseNet, 1 logit), imagenet.safetensors
(same backbone, 1000-way classifier, plus I64 num_batches_tracked counters as
torchvision saves them), missing/extra/misshaped variants, truncated copies,
and .npy inputs of the wrong shapes.
usage: make_bad_weights.py OUTDIR ARCH"""
import json
import os
import struct
import sys

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.dirname(__file__))
from sttools import save_safetensors  # noqa: E402
from torch_parity import build  # noqa: E402

out, arch = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
m = build(arch)
sd = {k: v.numpy() for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
save_safetensors(os.path.join(out, "good.safetensors"), sd)
# ImageNet-style: 1000 classes, and torchvision's integer counters.
big = dict(sd)
c = sd["classifier.weight"].shape[1]
big["classifier.weight"] = np.random.randn(1000, c).astype(np.float32)
big["classifier.bias"] = np.zeros(1000, np.float32)
save_safetensors(os.path.join(out, "imagenet_f32.safetensors"), big)
# Add I64 counters by hand (save_safetensors writes F32 only).
raw = open(os.path.join(out, "imagenet_f32.safetensors"), "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
data = raw[8 + n:]
end = len(data)
extra = b""
for k in [k for k in m.state_dict() if k.endswith("num_batches_tracked")][:3]:
    hdr[k] = {"dtype": "I64", "shape": [], "data_offsets": [end + len(extra), end + len(extra) + 8]}
    extra += struct.pack("<q", 7)
h = json.dumps(hdr).encode()
h += b" " * ((8 - len(h) % 8) % 8)
with open(os.path.join(out, "imagenet.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + data + extra)
missing = dict(sd)
del missing["features.norm0.running_var"]
save_safetensors(os.path.join(out, "missing.safetensors"), missing)
extra_t = dict(sd)
extra_t["features.bogus.weight"] = np.zeros(3, np.float32)
save_safetensors(os.path.join(out, "extra.safetensors"), extra_t)
mis = dict(sd)
mis["features.conv0.weight"] = np.zeros((1, 2, 3, 3), np.float32)
save_safetensors(os.path.join(out, "misshaped.safetensors"), mis)
good = open(os.path.join(out, "good.safetensors"), "rb").read()
open(os.path.join(out, "truncated.safetensors"), "wb").write(good[: len(good) // 2])
# Header length field claiming more than the file holds.
open(os.path.join(out, "liar.safetensors"), "wb").write(struct.pack("<Q", 1 << 40) + good[8:100])
np.save(os.path.join(out, "x.npy"), np.random.randn(2, 3, 32, 32).astype(np.float32))
np.save(os.path.join(out, "x_1ch.npy"), np.random.randn(2, 1, 32, 32).astype(np.float32))
np.save(os.path.join(out, "x_3d.npy"), np.random.randn(3, 32, 32).astype(np.float32))
np.save(os.path.join(out, "x_f64.npy"), np.random.randn(2, 3, 32, 32))
np.save(os.path.join(out, "x_small.npy"), np.random.randn(2, 3, 4, 4).astype(np.float32))
x = open(os.path.join(out, "x.npy"), "rb").read()
open(os.path.join(out, "x_trunc.npy"), "wb").write(x[: len(x) - 100])
