#!/usr/bin/python3
"""What this CPU can do at best: the convolution throughput oneDNN reaches
here (through PyTorch, which computes with the same oneDNN 2.6) in fp32 and
bf16, densenet169's convolution work per image, and from the two the ceiling
on images/s for inference (forward convolutions only) and a training step
(forward + backward-data + backward-weights, about 3x the forward work),
ignoring every memory-bound op (batch norm, pools, copies) and the optimizer.

The point: a speed target for mskx over PyTorch can only be met if
PyTorch's own figure times the target stays under that ceiling.

usage: /usr/bin/python3 bench/peak.py [--arch densenet169] [--size 320] [--threads 2] [--reps 20]
"""
import argparse
import json
import time

import torch
import torchvision


def conv_gflops(cin, cout, k, hw, n, dtype, reps):
    """GFLOP/s of one large convolution (channels_last, eval, no_grad)."""
    conv = torch.nn.Conv2d(cin, cout, k, padding=k // 2, bias=False).eval()
    x = torch.randn(n, cin, hw, hw).to(memory_format=torch.channels_last)
    flops = 2.0 * n * hw * hw * cin * cout * k * k
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
        for _ in range(3):
            conv(x)
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            conv(x)
            best = min(best, time.perf_counter() - t)
    return flops / best / 1e9


def conv_flops_per_image(arch, size):
    """Forward multiply-adds x 2 of every convolution and the classifier, per image."""
    model = getattr(torchvision.models, arch)(weights=None, num_classes=1).eval()
    total = [0.0]

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1]
            total[0] += 2.0 * out.numel() * (mod.in_channels // mod.groups) * k
        elif isinstance(mod, torch.nn.Linear):
            total[0] += 2.0 * out.numel() * mod.in_features

    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    return total[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="densenet169")
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = {"threads": a.threads, "torch": torch.__version__}
    for dt in ("fp32", "bf16"):
        # the bottleneck shape (1x1, many channels) and densenet's growth convolution (3x3, 128 -> 32)
        out["gflops_1x1_" + dt] = round(conv_gflops(512, 512, 1, 40, 8, dt, a.reps), 1)
        out["gflops_3x3_" + dt] = round(conv_gflops(128, 32, 3, 80, 8, dt, a.reps), 1)
    f = conv_flops_per_image(a.arch, a.size)
    out["arch"], out["size"], out["forward_gflop_per_image"] = a.arch, a.size, round(f / 1e9, 3)
    for dt in ("fp32", "bf16"):
        peak = max(out["gflops_1x1_" + dt], out["gflops_3x3_" + dt])
        out["ceiling_infer_img_s_" + dt] = round(peak * 1e9 / f, 2)
        out["ceiling_train_img_s_" + dt] = round(peak * 1e9 / (3 * f), 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
