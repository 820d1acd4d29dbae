#!/usr/bin/python3
"""PyTorch results for single engine ops, for tests/engine/test_ops_ref.c.

Usage: ops_torch_ref.py DIR
Reads DIR/manifest.txt, one op per line: "<kind> <name> <params...>", with the
inputs in DIR/<name>.<tensor>.f32 (raw little-endian float32; activations
NHWC, conv weights OIHW, linear weights (out, in)). Computes forward and
backward in float64 with torch.nn.functional and writes every result as
DIR/<name>.<tensor>.out.f32 (float32, NHWC for activations).
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

D = sys.argv[1] if len(sys.argv) == 2 else sys.exit("usage: ops_torch_ref.py DIR")


def rd(name, shape, grad=False):
    a = np.fromfile(os.path.join(D, name + ".f32"), dtype="<f4")
    if a.size != int(np.prod(shape)):
        sys.exit(f"{name}.f32: {a.size} floats, expected shape {shape}")
    t = torch.from_numpy(a.astype(np.float64).reshape(shape))
    return t.requires_grad_() if grad else t


def nchw_in(name, shape, grad=False):
    t = rd(name, shape).permute(0, 3, 1, 2).contiguous()
    return t.requires_grad_() if grad else t


def nhwc(t):
    return t.permute(0, 2, 3, 1)


def wr(name, t):
    t.detach().contiguous().numpy().astype("<f4").tofile(os.path.join(D, name + ".out.f32"))


def conv(nm, n, h, w, cin, cout, kh, kw, sh, sw, ph, pw, bias):
    x = nchw_in(nm + ".x", (n, h, w, cin), True)
    wt = rd(nm + ".w", (cout, cin, kh, kw), True)
    b = rd(nm + ".b", (cout,), True) if bias else None
    y = F.conv2d(x, wt, b, stride=(sh, sw), padding=(ph, pw))
    y.backward(nchw_in(nm + ".dy", (n, y.shape[2], y.shape[3], cout)))
    wr(nm + ".y", nhwc(y))
    wr(nm + ".dx", nhwc(x.grad))
    wr(nm + ".dw", wt.grad)
    if bias:
        wr(nm + ".db", b.grad)


def linear(nm, n, fin, fout):
    x = rd(nm + ".x", (n, fin), True)
    wt = rd(nm + ".w", (fout, fin), True)
    b = rd(nm + ".b", (fout,), True)
    y = F.linear(x, wt, b)
    y.backward(rd(nm + ".dy", (n, fout)))
    for k, t in (("y", y), ("dx", x.grad), ("dw", wt.grad), ("db", b.grad)):
        wr(f"{nm}.{k}", t)


def bn_train(nm, n, h, w, c, relu, eps):
    x = nchw_in(nm + ".x", (n, h, w, c), True)
    g, b = rd(nm + ".gamma", (c,), True), rd(nm + ".beta", (c,), True)
    rmean = torch.zeros(c, dtype=torch.float64)
    rvar = torch.ones(c, dtype=torch.float64)
    # momentum 1 makes the running variance PyTorch's own unbiased batch variance.
    y = F.batch_norm(x, rmean, rvar, g, b, training=True, momentum=1.0, eps=eps)
    if relu:
        y = F.relu(y)
    y.backward(nchw_in(nm + ".dy", (n, h, w, c)))
    var = x.detach().var(dim=(0, 2, 3), unbiased=False)
    wr(nm + ".y", nhwc(y))
    wr(nm + ".mean", x.detach().mean(dim=(0, 2, 3)))
    wr(nm + ".invstd", 1 / torch.sqrt(var + eps))
    wr(nm + ".varu", rvar)
    wr(nm + ".dx", nhwc(x.grad))
    wr(nm + ".dgamma", g.grad)
    wr(nm + ".dbeta", b.grad)


def bn_infer(nm, n, h, w, c, relu, eps):
    x = nchw_in(nm + ".x", (n, h, w, c))
    args = [rd(f"{nm}.{k}", (c,)) for k in ("rmean", "rvar", "gamma", "beta")]
    y = F.batch_norm(x, *args, training=False, eps=eps)
    wr(nm + ".y", nhwc(F.relu(y) if relu else y))


def maxpool(nm, n, h, w, c, k, s, p):
    x = nchw_in(nm + ".x", (n, h, w, c), True)
    y, idx = F.max_pool2d(x, k, s, p, return_indices=True)
    y.backward(nchw_in(nm + ".dy", (n, y.shape[2], y.shape[3], c)))
    wr(nm + ".y", nhwc(y))
    wr(nm + ".idx", nhwc(idx.double()))
    wr(nm + ".dx", nhwc(x.grad))


def avgpool(nm, n, h, w, c, k, s, p):
    x = nchw_in(nm + ".x", (n, h, w, c), True)
    y = F.avg_pool2d(x, k, s, p, count_include_pad=True)
    y.backward(nchw_in(nm + ".dy", (n, y.shape[2], y.shape[3], c)))
    wr(nm + ".y", nhwc(y))
    wr(nm + ".dx", nhwc(x.grad))


def gap(nm, n, h, w, c):
    x = nchw_in(nm + ".x", (n, h, w, c), True)
    y = F.adaptive_avg_pool2d(x, 1).flatten(1)
    y.backward(rd(nm + ".dy", (n, c)))
    wr(nm + ".y", y)
    wr(nm + ".dx", nhwc(x.grad))


def add_relu(nm, n, h, w, c):
    a = rd(nm + ".a", (n, h, w, c), True)
    b = rd(nm + ".b", (n, h, w, c))
    y = F.relu(a + b)
    y.backward(rd(nm + ".dy", (n, h, w, c)))
    wr(nm + ".y", y)
    wr(nm + ".da", a.grad)


def bce(nm, n, weighted):
    z = rd(nm + ".z", (n,), True)
    t = rd(nm + ".t", (n,))
    w = rd(nm + ".w", (n,)) if weighted else None
    loss = F.binary_cross_entropy_with_logits(z, t, weight=w, reduction="mean")
    loss.backward()
    wr(nm + ".loss", loss.reshape(1))
    wr(nm + ".dz", z.grad)


OPS = {f.__name__: f for f in (conv, linear, bn_train, bn_infer, maxpool, avgpool, gap, add_relu, bce)}


def number(s):
    try:
        return int(s)
    except ValueError:
        return float(s)


def main():
    with open(os.path.join(D, "manifest.txt")) as f:
        for lineno, line in enumerate(f, 1):
            tok = line.split()
            if not tok:
                continue
            if tok[0] not in OPS or len(tok) < 2:
                sys.exit(f"manifest.txt:{lineno}: unknown op line {line.strip()!r}")
            OPS[tok[0]](tok[1], *map(number, tok[2:]))


if __name__ == "__main__":
    main()
