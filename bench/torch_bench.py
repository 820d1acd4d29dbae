#!/usr/bin/python3
"""PyTorch side of the mskx benchmark: the work `mskx bench` times, done with
torchvision, printed as the same JSON object (one line on stdout).

Inference: eval mode under torch.no_grad(). Training: train mode,
BCEWithLogitsLoss, backward and a torch.optim.Adam step (defaults, as mskx);
inception_v3 adds 0.4 x its auxiliary head's loss, as mskx does.
Model and input are channels_last; bf16 runs under torch.autocast("cpu").
Run each measurement in a fresh process: peak_rss_mb is the process peak
(resource ru_maxrss), including the interpreter and libtorch (base_rss_mb is
that baseline, measured after imports, before the model is built).

usage: torch_bench.py [--arch A] [--size S] [--batch B] [--precision fp32|bf16]
                      [--mode infer|train] [--iters N] [--warmup W] [--threads T]
                      [--seed N] [--memory-efficient]
"""
import argparse
import json
import os
import re
import resource
import sys
import time


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


BASE_RSS_MB = None
AUX_WEIGHT = 0.4  # mskx's default --aux-weight for inception_v3


def parse_custom_densenet(spec):
    """densenet:growth=G,blocks=A-B-C,init=F,bn_size=S -> torchvision DenseNet kwargs."""
    kw = {"growth_rate": 32, "block_config": (6, 12, 24, 16), "num_init_features": 64, "bn_size": 4}
    for part in spec.split(","):
        if "=" not in part:
            raise ValueError("bad arch field '%s'" % part)
        k, v = part.split("=", 1)
        if k == "growth":
            kw["growth_rate"] = int(v)
        elif k == "blocks":
            kw["block_config"] = tuple(int(b) for b in v.split("-"))
        elif k == "init":
            kw["num_init_features"] = int(v)
        elif k == "bn_size":
            kw["bn_size"] = int(v)
        else:
            raise ValueError("unknown arch field '%s'" % k)
    return kw


def build_model(arch, memory_efficient):
    import torch
    import torchvision

    if arch.startswith("densenet:"):
        kw = parse_custom_densenet(arch[len("densenet:"):])
        return torchvision.models.DenseNet(num_classes=1, memory_efficient=memory_efficient, **kw)
    if re.fullmatch(r"densenet(121|169|201)", arch):
        return getattr(torchvision.models, arch)(weights=None, num_classes=1, memory_efficient=memory_efficient)
    if arch == "resnet50":
        m = torchvision.models.resnet50(weights=None)
        m.fc = torch.nn.Linear(m.fc.in_features, 1)
        return m
    if arch == "inception_v3":
        # As mskx: one-logit fc and AuxLogits.fc, transform_input off (random weights).
        m = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=True)
        m.fc = torch.nn.Linear(2048, 1)
        m.AuxLogits.fc = torch.nn.Linear(768, 1)
        return m
    raise ValueError("unknown arch '%s'" % arch)


def run(a):
    import torch

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = build_model(a.arch, a.memory_efficient).to(memory_format=torch.channels_last)
    x = torch.randn(a.batch, 3, a.size, a.size).contiguous(memory_format=torch.channels_last)
    t = torch.randint(0, 2, (a.batch, 1)).float()
    bf16 = a.precision == "bf16"
    loss_fn = torch.nn.BCEWithLogitsLoss()
    opt = None
    if a.mode == "train":
        model.train()
        opt = torch.optim.Adam(model.parameters())
    else:
        model.eval()
    losses = []

    def step():
        if a.mode == "infer":
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                model(x)
            return
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            z = model(x)
        if isinstance(z, tuple):  # Inception-v3 in training: main + 0.4 * auxiliary loss, as mskx
            loss = loss_fn(z[0].float(), t) + AUX_WEIGHT * loss_fn(z[1].float(), t)
        else:
            loss = loss_fn(z.float(), t)
        loss.backward()
        opt.step()
        losses.append(float(loss))

    times = []
    for i in range(a.warmup + a.iters):
        t0 = time.perf_counter()
        step()
        dt = time.perf_counter() - t0
        if i >= a.warmup:
            times.append(dt * 1e3)
    times.sort()
    n = len(times)
    med = times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])
    out = {
        "arch": a.arch, "size": a.size, "batch": a.batch, "precision": a.precision, "mode": a.mode,
        "threads": torch.get_num_threads(), "iters": a.iters,
        "images_per_s": round(a.batch / (med * 1e-3), 3),
        "ms_per_batch_median": round(med, 3), "ms_per_batch_min": round(times[0], 3),
        "ms_per_batch_mean": round(sum(times) / n, 3), "warmup": a.warmup,
        "peak_rss_mb": round(peak_rss_mb(), 3), "engine": "pytorch",
        "base_rss_mb": round(BASE_RSS_MB, 3), "torch_version": torch.__version__,
    }
    if losses:
        out["loss_first"], out["loss_last"] = losses[0], losses[-1]
    return out


def main():
    global BASE_RSS_MB
    p = argparse.ArgumentParser(description="PyTorch counterpart of `mskx bench` (one JSON line).")
    p.add_argument("--arch", default="densenet169")
    p.add_argument("--size", type=int, default=320)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--mode", choices=["infer", "train"], default="infer")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--memory-efficient", action="store_true",
                   help="torchvision DenseNet's checkpointed dense layers (default off, as torchvision)")
    p.add_argument("--json", action="store_true", help="accepted for symmetry with mskx bench")
    a = p.parse_args()
    for name in ("size", "batch", "iters", "threads"):
        if getattr(a, name) < 1:
            p.error("--%s must be positive" % name)
    if a.warmup < 0:
        p.error("--warmup must not be negative")
    import torch  # noqa: F401  (the baseline RSS includes libtorch)
    import torchvision  # noqa: F401

    BASE_RSS_MB = peak_rss_mb()
    try:
        out = run(a)
    except ValueError as ex:
        print("torch_bench.py: %s" % ex, file=sys.stderr)
        return 1
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
