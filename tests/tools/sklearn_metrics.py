#!/usr/bin/python3
"""Reference values for tests/eval/test_metrics.c from scikit-learn and numpy.

Writes OUTDIR/metrics_cases.txt: many seeded random binary cases (sizes 1 to
3200, heavy ties, one-class truth or predictions, perfect, inverted, constant
and 0/1 scores) with sklearn's confusion_matrix, accuracy, precision, recall,
specificity (recall of class 0), f1 (all zero_division=0), cohen_kappa_score,
roc_auc_score (nan when undefined) and roc_curve(drop_intermediate=False);
and OUTDIR/percentile_cases.txt: numpy.percentile (linear) at 2.5 and 97.5.
Usage: /usr/bin/python3 sklearn_metrics.py OUTDIR
"""
import os
import sys
import warnings

import numpy as np
from sklearn import metrics as skm

warnings.simplefilter("ignore")  # sklearn warns on the degenerate cases we test on purpose


def fmt(a):
    return " ".join(repr(float(x)) if np.isfinite(x) else ("nan" if np.isnan(x) else ("inf" if x > 0 else "-inf"))
                    for x in np.asarray(a, dtype=float))


def scores_for(kind, y, rng):
    n = len(y)
    if kind == "continuous":
        return 1 / (1 + np.exp(-(rng.normal(size=n) + 1.5 * (2 * y - 1))))
    if kind == "ties1":   # one decimal: heavy ties
        return np.round(rng.uniform(size=n) * 0.6 + 0.4 * y, 1)
    if kind == "ties4":   # four levels only
        return np.minimum(rng.integers(0, 3, size=n) + y, 3) / 3.0
    if kind == "perfect":
        return 0.1 + 0.8 * y + 0.05 * rng.uniform(size=n)
    if kind == "inverted":
        return 0.9 - 0.8 * y - 0.05 * rng.uniform(size=n)
    if kind == "constant":
        return np.full(n, 0.37)
    if kind == "decisions":
        return np.where(rng.uniform(size=n) < 0.8, y, 1 - y).astype(float)
    if kind == "all_high":  # every prediction abnormal at 0.5
        return 0.6 + 0.4 * rng.uniform(size=n)
    if kind == "all_low":
        return 0.5 * rng.uniform(size=n)
    raise ValueError(kind)


def labels_for(kind, n, rng):
    if kind == "mixed":
        return (rng.uniform(size=n) < rng.uniform(0.2, 0.8)).astype(int)
    if kind == "ones":
        return np.ones(n, dtype=int)
    if kind == "zeros":
        return np.zeros(n, dtype=int)
    raise ValueError(kind)


def write_case(f, name, y, s, thr):
    yp = (s > thr).astype(int)
    cm = skm.confusion_matrix(y, yp, labels=[0, 1]).ravel()
    kw = dict(zero_division=0)
    vals = [skm.accuracy_score(y, yp), skm.precision_score(y, yp, **kw), skm.recall_score(y, yp, **kw),
            skm.recall_score(y, yp, pos_label=0, **kw), skm.f1_score(y, yp, **kw), skm.cohen_kappa_score(y, yp)]
    try:
        auc = skm.roc_auc_score(y, s)
    except ValueError:  # one class in y_true
        auc = float("nan")
    fpr, tpr, thr_roc = skm.roc_curve(y, s, drop_intermediate=False)
    f.write(f"case {name} {len(y)} {thr!r}\n")
    f.write("y " + " ".join(str(int(v)) for v in y) + "\n")
    f.write("s " + fmt(s) + "\n")
    f.write("cm " + " ".join(str(int(v)) for v in cm) + "\n")
    f.write("ref " + fmt(vals + [auc]) + "\n")
    f.write(f"roc {len(fpr)}\n")
    f.write("fpr " + fmt(fpr) + "\n")
    f.write("tpr " + fmt(tpr) + "\n")
    f.write("thr " + fmt(thr_roc) + "\n")


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20171220)
    sizes = [1, 2, 3, 4, 5, 7, 10, 20, 50, 101, 500, 3200]
    score_kinds = ["continuous", "ties1", "ties4", "perfect", "inverted", "constant", "decisions", "all_high",
                   "all_low"]
    ncase = 0
    with open(os.path.join(out, "metrics_cases.txt"), "w") as f:
        for n in sizes:
            for lk in ["mixed", "mixed", "ones", "zeros"]:
                for sk in score_kinds:
                    y = labels_for(lk, n, rng)
                    s = scores_for(sk, y, rng)
                    thr = 0.5 if rng.uniform() < 0.7 else float(np.round(rng.uniform(), 2))
                    write_case(f, f"n{n}_{lk}_{sk}", y, s, thr)
                    ncase += 1
        # threshold exactly on a tied score value: the rule is strictly greater
        y = labels_for("mixed", 40, rng)
        write_case(f, "thr_on_ties", y, np.round(rng.uniform(size=40), 1), 0.5)
        ncase += 1
    with open(os.path.join(out, "percentile_cases.txt"), "w") as f:
        for n in [1, 2, 3, 10, 39, 40, 41, 1000, 2000]:
            for ties in [False, True]:
                x = rng.normal(size=n)
                if ties:
                    x = np.round(x, 1)
                p = np.percentile(x, [2.5, 97.5])
                f.write(f"pct {n}\nx {fmt(x)}\nref {fmt(p)}\n")
    print(f"wrote {ncase} metric cases to {out}")


if __name__ == "__main__":
    main()
