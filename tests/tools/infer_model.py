"""Tiny model files and a PyTorch reference for the `mskx predict` tests.

  infer_model.py make OUT.safetensors ARCH --seed S --size N [--threshold T] [--calibrate] [--transform-input 0|1]
      a random torchvision DenseNet, ResNet or Inception-v3 (one logit,
      randomised batch-norm statistics) saved as an mskx model file (metadata
      format mskx-model-1); --calibrate scales the head so that logits stay
      small (deep random nets saturate); --transform-input: Inception-v3's
      transform_input (default 1, as torch_parity builds it)
  infer_model.py prob MODEL.safetensors IMG.png...
      prints P(abnormal) per image: torchvision model with the file's weights,
      ImageNet normalisation of the grey image replicated to 3 channels. The
      images must already be SIZE x SIZE (no resizing here).
  infer_model.py png OUT.png:W:H:SEED...   grey test images
Test tooling only.
"""
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(__file__))
from sttools import load_safetensors, save_safetensors  # noqa: E402

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def make(out, arch, seed, size, threshold, calibrate=False, transform_input=1):
    import torch
    from torch_parity import build
    torch.manual_seed(seed)
    m = build(arch)
    g = torch.Generator().manual_seed(seed + 1)
    bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        if arch == "inception_v3":
            # Its init (std 0.1) with arbitrary statistics gives logits ~1e10:
            # take running statistics from a batch (then perturb them, as
            # torch_parity.py does) so that every activation stays O(1).
            m.transform_input = bool(transform_input)
            for mod in bns:
                mod.momentum = 1.0
            m.train()
            aux, m.AuxLogits = m.AuxLogits, None   # needs 299 px in training; unused in inference
            m(torch.randn(4, 3, size, size, generator=g))
            m.AuxLogits = aux
            for mod in bns:
                mod.momentum = 0.1
                mod.running_var.mul_(0.8 + 0.4 * torch.rand(mod.running_var.shape, generator=g))
                mod.running_mean.add_(0.1 * torch.randn(mod.running_mean.shape, generator=g))
        else:
            for mod in bns:
                mod.running_mean.copy_(0.2 * torch.randn(mod.running_mean.shape, generator=g))
                mod.running_var.copy_(0.5 + torch.rand(mod.running_var.shape, generator=g))
        head = m.fc if hasattr(m, "fc") else m.classifier  # resnet / densenet
        head.weight.copy_(0.5 * torch.randn(head.weight.shape, generator=g))
        if calibrate:
            # Deep random networks (ResNet-50's residual sums) reach logits in
            # the thousands, where every probability is 0 or 1 and comparisons
            # see nothing: scale the head so logits of image-like inputs stay
            # within about +-2.
            m.eval()
            x = torch.randn(4, 3, size, size, generator=g)
            head.bias.zero_()
            z = m(x)
            k = 2.0 / max(float(z.abs().max()), 1e-6)
            head.weight.mul_(k)
            head.bias.copy_(0.3 * torch.randn(head.bias.shape, generator=g))
            if arch == "inception_v3":
                # Grey images give it logits far from those of noise: scale and
                # centre on grey-image-like inputs (the same grey in every
                # channel, ImageNet-normalised), so probabilities stay mid-range.
                u = 0.2 + 0.5 * torch.rand(4, 1, size, size, generator=g)
                xg = torch.cat([(u - MEAN[c]) / STD[c] for c in range(3)], 1)
                head.bias.zero_()
                z = m(xg)
                head.weight.mul_(1.0 / max(float((z - z.mean()).abs().max()), 1e-6))
                head.bias.copy_(-m(xg).mean() + 0.3 * torch.randn(head.bias.shape, generator=g))
    state = {k: v.detach().numpy().copy() for k, v in m.state_dict().items() if not k.endswith("num_batches_tracked")}
    meta = {"format": "mskx-model-1", "arch": arch, "size": size, "keep_aspect": 0,
            "mean": ",".join(str(v) for v in MEAN), "std": ",".join(str(v) for v in STD),
            "parts": "all", "threshold": threshold, "epoch": 0, "metrics": "{}"}
    if arch == "inception_v3":
        meta["transform_input"] = str(int(transform_input))
    save_safetensors(out, state, meta)


def prob(model, images):
    import torch
    from torch_parity import build
    torch.set_num_threads(1)
    state, meta = load_safetensors(model)
    m = build(meta["arch"]).double().eval()
    if meta["arch"] == "inception_v3":
        m.transform_input = meta.get("transform_input", "0") == "1"   # mskx's default for a model file without it
    m.load_state_dict({k: torch.from_numpy(v).double() for k, v in state.items()}, strict=False)
    for path in images:
        g = np.asarray(Image.open(path).convert("L"), dtype=np.float64) / 255.0
        x = np.stack([(g - MEAN[c]) / STD[c] for c in range(3)])[None]
        with torch.no_grad():
            z = m(torch.from_numpy(x)).item()
        print("%.12f" % (1 / (1 + np.exp(-z))))


def png(out, w, h, seed):
    r = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    cx, cy = r.uniform(0, w), r.uniform(0, h)
    v = 40 + 60 * x / w + 30 * y / h + 20 * r.random((h, w)) + 120 * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (0.1 * (w + h) ** 2))
    Image.fromarray(np.clip(v, 0, 255).astype(np.uint8), "L").save(out)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "make":
        rest = [a for a in args[2:] if a != "--calibrate"]
        kv = dict(zip(rest[::2], rest[1::2]))
        make(args[0], args[1], int(kv.get("--seed", 0)), int(kv.get("--size", 64)), float(kv.get("--threshold", 0.5)),
             "--calibrate" in args, int(kv.get("--transform-input", 1)))
    elif cmd == "prob":
        prob(args[0], args[1:])
    elif cmd == "png":
        for spec in args:
            out, w, h, seed = spec.rsplit(":", 3)
            png(out, int(w), int(h), int(seed))
    else:
        sys.exit("unknown command " + cmd)
