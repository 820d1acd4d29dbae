"""Compares `mskx forward` outputs with the PyTorch reference written by
torch_parity.py. Prints one PASS/FAIL line per check with the max error.

usage: compare_parity.py REFDIR OURDIR LABEL [--bf16 | --bf16-train]
The reference is PyTorch in float64 (from the same float32 weights/inputs).
Tolerances: logits and loss within 1e-4*max|ref| + 1e-5; bf16 logits within
3e-2 relative. Gradients: every tensor within 1e-3*max|ref grad| + 1e-6 of
the reference. Where PyTorch's own float32 gradients miss that bound too
(train-mode batch norm in deep, randomly initialised nets amplifies float32
rounding: measured 50-350x the bound for densenet121/resnet50 at 64-224 px),
we require what PyTorch fp32 achieves: a relative L2 error of the whole
gradient within 3x PyTorch fp32's, and cosine >= 0.999 for every tensor.
The detail line reports both errors and how many tensors met the strict bound.
--bf16-train: the gradients of a bf16 training step (grads_bf16.safetensors)
against the float64 reference, whose relative L2 error must stay within
1.5x that of PyTorch's CPU autocast in bf16 (grads_torch_bf16.safetensors)
plus 0.02: bf16 rounding of activations, amplified by train-mode batch norm
over tiny batches, makes both large. The small DenseNet is the telling case
(ours 0.24, PyTorch's 0.34; densenet121 at 128 px batch 4: 0.58 and 0.74);
for the full-size networks at 64 px batch 2 both are at noise level (ours
0.79-1.41, PyTorch's 0.96-1.36), so there the check only catches failures
that make the gradients much worse than noise (NaN, blow-ups)."""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from sttools import load_safetensors  # noqa: E402


def check(name, ok, detail):
    print(("PASS " if ok else "FAIL ") + name + ("" if ok else ": ") + ("" if ok else detail))
    print("# %s: %s" % (name, detail))


def rel_l2_of(g, rg):
    num = sum(float(((g[k] - rg[k]).astype(np.float64) ** 2).sum()) for k in rg)
    return np.sqrt(num / max(sum(float((rg[k].astype(np.float64) ** 2).sum()) for k in rg), 1e-300))


def min_cos_of(g, rg):
    return min(float((g[k].astype(np.float64) * rg[k]).sum()) /
               (np.sqrt(float((g[k].astype(np.float64) ** 2).sum()) * float((rg[k].astype(np.float64) ** 2).sum()))
                + 1e-30) for k in rg)


def bf16_train(ref, ours, label):
    rg, _ = load_safetensors(os.path.join(ref, "grads.safetensors"))
    ag, _ = load_safetensors(os.path.join(ref, "grads_torch_bf16.safetensors"))
    bg, _ = load_safetensors(os.path.join(ours, "grads_bf16.safetensors"))
    if any(k not in bg or bg[k].shape != rg[k].shape for k in rg):
        check(label + "_bf16_train_grads", False, "missing or misshaped gradients")
        return
    ours_e, torch_e = rel_l2_of(bg, rg), rel_l2_of(ag, rg)
    check(label + "_bf16_train_grads", ours_e <= 1.5 * torch_e + 0.02,
          "relative L2 ours %.4g, PyTorch autocast bf16 %.4g; min cosine ours %.4f, PyTorch %.4f"
          % (ours_e, torch_e, min_cos_of(bg, rg), min_cos_of(ag, rg)))


def main():
    ref, ours, label = sys.argv[1], sys.argv[2], sys.argv[3]
    bf16 = "--bf16" in sys.argv
    if bf16:
        r = np.load(os.path.join(ref, "logits_eval.npy"))
        o = np.load(os.path.join(ours, "logits_eval_bf16.npy"))
        err = np.abs(r - o).max()
        tol = 3e-2 * max(np.abs(r).max(), 1e-3)
        check(label + "_bf16_logits", o.shape == r.shape and err <= tol, "max err %.3g tol %.3g" % (err, tol))
        return
    if "--bf16-train" in sys.argv:
        bf16_train(ref, ours, label)
        return
    for mode in ("eval", "train"):
        r = np.load(os.path.join(ref, "logits_%s.npy" % mode))
        o = np.load(os.path.join(ours, "logits_%s.npy" % mode))
        err = np.abs(r - o).max() if o.shape == r.shape else float("inf")
        tol = 1e-4 * np.abs(r).max() + 1e-5
        check("%s_%s_logits" % (label, mode), err <= tol, "max err %.3g tol %.3g" % (err, tol))
    rl = float(open(os.path.join(ref, "loss.txt")).read())
    ol = float(open(os.path.join(ours, "loss.txt")).read().split()[1])
    tol = 1e-4 * abs(rl) + 1e-5
    check(label + "_loss", abs(rl - ol) <= tol, "ref %.9g ours %.9g" % (rl, ol))
    rg, _ = load_safetensors(os.path.join(ref, "grads.safetensors"))
    tg, _ = load_safetensors(os.path.join(ref, "grads_torch32.safetensors"))
    og, _ = load_safetensors(os.path.join(ours, "grads.safetensors"))
    missing = [k for k in rg if k not in og or og[k].shape != rg[k].shape]
    extra = sorted(set(og) - set(rg))
    if missing or extra:
        check(label + "_grads", False, "missing/misshaped: %s; unexpected: %s" % (missing[:3], extra[:3]))
        return

    def ratio(g, k):  # error over the strict per-tensor bound
        return np.abs(g[k] - rg[k]).max() / (1e-3 * np.abs(rg[k]).max() + 1e-6)

    def rel_l2(g):
        num = sum(float(((g[k] - rg[k]).astype(np.float64) ** 2).sum()) for k in rg)
        return np.sqrt(num / max(sum(float((rg[k].astype(np.float64) ** 2).sum()) for k in rg), 1e-300))

    def min_cos(g):
        return min(float((g[k] * rg[k]).sum()) / (np.sqrt(float((g[k] ** 2).sum()) * float((rg[k] ** 2).sum())) + 1e-30)
                   for k in rg)

    ours_worst = max((ratio(og, k), k) for k in rg)
    torch_worst = max(ratio(tg, k) for k in rg)
    strict = sum(ratio(og, k) <= 1 for k in rg)
    detail = ("%d tensors, %d within 1e-3*max|ref|+1e-6; worst err/bound ours %.3g (%s), PyTorch fp32 %.3g; "
              "relative L2 ours %.3g, PyTorch fp32 %.3g; min cosine ours %.6f" %
              (len(rg), strict, ours_worst[0], ours_worst[1], torch_worst, rel_l2(og), rel_l2(tg), min_cos(og)))
    if torch_worst <= 1:
        # Well-conditioned: the strict per-tensor bound applies to every tensor.
        ok = ours_worst[0] <= 1
    else:
        # PyTorch's own float32 gradients miss the strict bound: require the same
        # accuracy class as PyTorch fp32 overall and the right direction per tensor.
        ok = rel_l2(og) <= max(1e-3, 3 * rel_l2(tg)) and min_cos(og) >= 0.999
    check(label + "_grads", ok, detail)


if __name__ == "__main__":
    main()
