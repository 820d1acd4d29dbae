"""Reference fits for `mskx ensemble` (stacking and weights). Test tooling only.

  sklearn_logreg.py stack FILE [--C 1.0] [--logit]
      FILE: CSV without header, one row per study: feature columns then the
      0/1 label. With --logit the features are probabilities turned into
      logit(clip(p, 1e-6, 1 - 1e-6)) as the ensemble's stacker does.
      Prints JSON {"coef": [...], "intercept": b} of
      sklearn.linear_model.LogisticRegression(C=C) with the newton-cg solver
      and a tight tolerance: the same objective as the default lbfgs, but
      lbfgs stops on a relative change in the loss (ftol = 64 eps) with a
      gradient still near 1e-4, too loose a reference for a 1e-6 comparison.
  sklearn_logreg.py features FILE --C C
      FILE: `mskx ensemble --method stack-features --features-csv` output
      (header study,part,label,f1..fD). Prints JSON {"mean", "scale", "coef",
      "intercept", "prob": {study: p}} of StandardScaler followed by
      LogisticRegression(C) (newton-cg, tight tolerance as for stack).
  sklearn_logreg.py weights FILE
      Same CSV of member probabilities; prints JSON {"weights": [...],
      "log_loss": L}: scipy SLSQP minimum of sklearn's log_loss of the
      weighted mean over the simplex.
"""
import json
import sys

import numpy as np

CLAMP = 1e-6


def load(path, logit):
    data = np.loadtxt(path, delimiter=",", ndmin=2)
    x, y = data[:, :-1], data[:, -1].astype(int)
    if logit:
        q = np.clip(x, CLAMP, 1 - CLAMP)
        x = np.log(q / (1 - q))
    return x, y


def stack(path, C, logit):
    from sklearn.linear_model import LogisticRegression
    x, y = load(path, logit)
    m = LogisticRegression(C=C, solver="newton-cg", tol=1e-12, max_iter=100000).fit(x, y)
    print(json.dumps({"coef": m.coef_[0].tolist(), "intercept": float(m.intercept_[0])}))


def features(path, C):
    import csv
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    rows = list(csv.reader(open(path)))[1:]
    ids = [r[0] for r in rows]
    y = np.array([int(r[2]) for r in rows])
    x = np.array([[float(v) for v in r[3:]] for r in rows])
    sc = StandardScaler().fit(x)
    z = sc.transform(x)
    m = LogisticRegression(C=C, solver="newton-cg", tol=1e-12, max_iter=100000).fit(z, y)
    p = m.predict_proba(z)[:, 1]
    print(json.dumps({"mean": sc.mean_.tolist(), "scale": sc.scale_.tolist(), "coef": m.coef_[0].tolist(),
                      "intercept": float(m.intercept_[0]), "prob": dict(zip(ids, p.tolist()))}))


def weights(path):
    from scipy.optimize import minimize
    from sklearn.metrics import log_loss
    p, y = load(path, False)
    m = p.shape[1]

    def f(w):
        return log_loss(y, np.clip(p @ w, 1e-15, 1 - 1e-15), labels=[0, 1])

    best = None
    for start in [np.full(m, 1.0 / m)] + [np.eye(m)[j] * 0.9 + 0.1 / m for j in range(m)]:
        r = minimize(f, start, method="SLSQP", bounds=[(0, 1)] * m,
                     constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}], options={"ftol": 1e-14, "maxiter": 1000})
        if best is None or r.fun < best.fun:
            best = r
    print(json.dumps({"weights": best.x.tolist(), "log_loss": float(best.fun)}))


def main(argv):
    if len(argv) < 3 or argv[1] not in ("stack", "weights", "features"):
        sys.exit(__doc__)
    if argv[1] == "features":
        features(argv[2], float(argv[argv.index("--C") + 1]))
    elif argv[1] == "stack":
        C = float(argv[argv.index("--C") + 1]) if "--C" in argv else 1.0
        stack(argv[2], C, "--logit" in argv)
    else:
        weights(argv[2])


if __name__ == "__main__":
    main(sys.argv)
