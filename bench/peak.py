#!/usr/bin/python3
"""What this CPU can do at best: the convolution throughput oneDNN reaches
here (through PyTorch, which computes with the same oneDNN 2.6) in fp32 and
bf16, densenet169's convolution work per image, and from the two the ceiling
on images/s for inference (forward convolutions only) and a training step
(forward + backward-data + backward-weights, about 3x the forward work),
ignoring every memory-bound op (batch norm, pools, copies) and the optimizer.

The point: a speed target for mskx over PyTorch can only be met if
PyTorch's own figure times the target stays under that ceiling.

With --configs ARCH/SIZE/BATCH/MODE/PRECISION ... (bench/compare's
configurations), it also reports per configuration the ceiling in images/s
and the network's conv-only speed: every convolution of the network (each
distinct shape once, times its count) timed alone through PyTorch at that
batch, in that precision, forward only (infer) or forward + backward
(train); images/s = batch / the sum. That is the speed the network would
reach if nothing but its convolutions ran, each as fast as oneDNN runs it
alone.

With --shape-table CONFIG ... it prints instead, per configuration, where
the conv-only time goes: every distinct convolution with its count, time
alone, GFLOP/s and share of the peak, then the same summed by kernel size.

usage: /usr/bin/python3 bench/peak.py [--arch densenet169] [--size 320] [--threads 2] [--reps 20]
                                      [--configs ARCH/SIZE/BATCH/MODE/PRECISION ...]
                                      [--shape-table ARCH/SIZE/BATCH/MODE/PRECISION ...]
"""
import argparse
import collections
import json
import os
import sys
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


def build(arch):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_bench import build_model
    return build_model(arch, False).eval()


def conv_flops_per_image(arch, size):
    """Forward multiply-adds x 2 of every convolution and the classifier, per image."""
    model = build(arch)
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


def conv_only_img_s(arch, size, batch, mode, dtype, reps):
    """batch / the summed time of the network's convolutions, each timed alone."""
    return batch / sum(r["seconds"] * r["count"] for r in conv_shape_times(arch, size, batch, mode, dtype, reps))


def conv_shape_times(arch, size, batch, mode, dtype, reps):
    """Each distinct convolution of the network at this batch: its shape, how
    many times it occurs, its forward FLOPs and its best time alone (forward,
    or forward + backward in train mode)."""
    model = build(arch)
    shapes = collections.Counter()

    def hook(mod, inp, out):
        x = inp[0]
        shapes[(mod.in_channels, mod.out_channels, mod.kernel_size, mod.stride, mod.padding, mod.groups,
                mod.bias is not None, tuple(x.shape))] += 1

    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(batch, 3, size, size))
    rows = []
    for (cin, cout, k, st, pad, g, bias, xs), count in shapes.items():
        conv = torch.nn.Conv2d(cin, cout, k, stride=st, padding=pad, groups=g, bias=bias)
        conv = conv.to(memory_format=torch.channels_last)
        x = torch.randn(*xs).contiguous(memory_format=torch.channels_last)
        train = mode == "train"
        if train:
            x.requires_grad_(cin != 3)   # the stem's input needs no gradient, as in training
            conv.train()
        else:
            conv.eval()
        best = float("inf")
        for i in range(2 + reps):
            t = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
                if train:
                    y = conv(x)
                    y.backward(torch.ones_like(y))
                else:
                    with torch.no_grad():
                        conv(x)
            if i >= 2:
                best = min(best, time.perf_counter() - t)
        oh = (xs[2] + 2 * pad[0] - k[0]) // st[0] + 1
        ow = (xs[3] + 2 * pad[1] - k[1]) // st[1] + 1
        rows.append({"shape": "%dx%d %d->%d stride %d at %dx%d" % (k[0], k[1], cin, cout, st[0], xs[2], xs[3]),
                     "kernel": "%dx%d" % k, "count": count, "seconds": best,
                     "gflop": 2.0 * batch * oh * ow * cout * (cin // g) * k[0] * k[1] / 1e9})
    return rows


def shape_table(spec, peak, reps):
    """Markdown: where the network's conv-only time goes, shape by shape, and
    how close each shape runs to the CPU's peak (the same oneDNN as mskx)."""
    arch, size, batch, mode, dt = spec.split("/")
    rows = conv_shape_times(arch, int(size), int(batch), mode, dt, reps)
    work = 3 if mode == "train" else 1
    total = sum(r["seconds"] * r["count"] for r in rows)
    out = ["### Conv-only time by shape: %s (peak %.0f GFLOP/s %s)" % (spec, peak, dt), "",
           "| convolution | count | ms each | ms in all | share of conv-only | GFLOP/s | of peak |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    rows.sort(key=lambda r: -r["seconds"] * r["count"])
    for r in rows:
        g = work * r["gflop"] / r["seconds"]
        out.append("| %s | %d | %.2f | %.1f | %.1f%% | %.0f | %.0f%% |" % (
            r["shape"], r["count"], r["seconds"] * 1e3, r["seconds"] * r["count"] * 1e3,
            100 * r["seconds"] * r["count"] / total, g, 100 * g / peak))
    by = collections.OrderedDict()
    for r in rows:
        k = by.setdefault(r["kernel"], [0.0, 0.0, 0])
        k[0] += r["seconds"] * r["count"]
        k[1] += work * r["gflop"] * r["count"]
        k[2] += r["count"]
    out += ["", "| kernel | convolutions | share of conv-only time | share of FLOPs | GFLOP/s | of peak |",
            "|---|---:|---:|---:|---:|---:|"]
    flops = sum(v[1] for v in by.values())
    for k, (t, f, n) in by.items():
        out.append("| %s | %d | %.1f%% | %.1f%% | %.0f | %.0f%% |" % (k, n, 100 * t / total, 100 * f / flops, f / t,
                                                                    100 * f / t / peak))
    out.append("| all | %d | 100%% | 100%% | %.0f | %.0f%% |" % (sum(v[2] for v in by.values()), flops / total,
                                                                100 * flops / total / peak))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="densenet169")
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--configs", nargs="*", default=[], help="ARCH/SIZE/BATCH/MODE/PRECISION (bench/compare's)")
    ap.add_argument("--shape-table", nargs="*", default=[], metavar="CONFIG",
                    help="print, per ARCH/SIZE/BATCH/MODE/PRECISION, a markdown table of the conv-only time by "
                         "convolution shape with each shape's share of the peak (instead of the JSON)")
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
        out["peak_gflops_" + dt] = peak
    if a.shape_table:
        for spec in a.shape_table:
            print(shape_table(spec, out["peak_gflops_" + spec.split("/")[4]], max(1, a.reps // 4)) + "\n")
        return
    flops = {(a.arch, a.size): f}
    if a.configs:
        out["configs"] = {}
    for spec in a.configs:
        arch, size, batch, mode, dt = spec.split("/")
        size, batch = int(size), int(batch)
        if (arch, size) not in flops:
            flops[(arch, size)] = conv_flops_per_image(arch, size)
        f = flops[(arch, size)]
        peak = out["peak_gflops_" + dt]
        out["configs"][spec] = {
            "forward_gflop_per_image": round(f / 1e9, 4),
            "ceiling_img_s": round(peak * 1e9 / (f * (3 if mode == "train" else 1)), 3),
            "conv_only_img_s": round(conv_only_img_s(arch, size, batch, mode, dt, max(1, a.reps // 4)), 3)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
