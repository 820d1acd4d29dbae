#!/usr/bin/python3
"""Reference data for tests/train: PyTorch optimizers and LR schedulers, and
scikit-learn class weights, written as float32 .npy files.

  optim_ref.py optim DIR   reads DIR/cases.txt ("case key=value ..." per line,
                           keys of optim_config), writes DIR/params0.npy,
                           DIR/grads.npy [steps, n], DIR/lrmul.npy [steps] and
                           per case DIR/<case>.traj.npy [steps, n] (params after
                           each step) and DIR/<case>.<state>.npy (final state);
                           split=S freeze=F: elements [0, S) get no gradient
                           (grad None) in the first F steps
  optim_ref.py sched DIR   step-decay formula, cosine (torch), plateau (torch,
                           checked against a transcription of Keras)
  optim_ref.py cw DIR      MURA-paper and sklearn 'balanced' class weights
"""
import math
import os
import sys

import numpy as np

STEPS = 20
N = 1000


def save(d, name, a):
    np.save(os.path.join(d, name), np.asarray(a, dtype=np.float32))


# ---------------------------------------------------------------- optimizers
def make_inputs(d):
    rng = np.random.default_rng(20240611)
    p0 = rng.uniform(0.5, 2.0, N) * rng.choice([-1.0, 1.0], N)
    scale = 10.0 ** rng.uniform(-4, 0, N)  # per-element gradient scale, some near eps
    g = rng.standard_normal((STEPS, N)) * scale
    g[rng.random((STEPS, N)) < 0.05] = 0.0  # exact zeros exercise the eps path
    g[:, :7] = 0.0  # elements that never see a gradient
    lrmul = 1.0 + 0.5 * np.sin(np.arange(STEPS))  # the schedule changes lr every step
    p0, g, lrmul = (np.asarray(x, dtype=np.float32) for x in (p0, g, lrmul))
    save(d, "params0.npy", p0)
    save(d, "grads.npy", g)
    save(d, "lrmul.npy", lrmul)
    return p0, g, lrmul


def make_optimizer(torch, ps, c):
    name, lr = c["name"], c["lr"]
    wd = c.get("weight_decay", 0.0)
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(ps, lr=lr, betas=(c["beta1"], c["beta2"]), eps=c["eps"], weight_decay=wd, foreach=False)
    if name == "sgd":
        return torch.optim.SGD(ps, lr=lr, momentum=c.get("momentum", 0.0), dampening=0, weight_decay=wd,
                               nesterov=bool(c.get("nesterov", 0)), foreach=False)
    if name == "rmsprop":
        # Keras RMSprop(rho, epsilon) == torch RMSprop(alpha=rho, eps=epsilon): both add eps outside the sqrt.
        return torch.optim.RMSprop(ps, lr=lr, alpha=c["rho"], eps=c["eps"], weight_decay=wd,
                                   momentum=c.get("momentum", 0.0), centered=False, foreach=False)
    raise SystemExit("unknown optimizer " + name)


def run_optim(d):
    import torch
    p0, g, lrmul = make_inputs(d)
    with open(os.path.join(d, "cases.txt")) as f:
        lines = [ln.split() for ln in f if ln.strip()]
    for parts in lines:
        case = parts[0]
        c = {}
        for kv in parts[1:]:
            k, v = kv.split("=", 1)
            c[k] = v if k == "name" else float(v)
        # split/freeze: elements [0, split) get grad None (a frozen backbone) for the first `freeze` steps.
        split, freeze = int(c.get("split", 0)), int(c.get("freeze", 0))
        chunks = [p0[:split], p0[split:]] if split else [p0]
        ps = [torch.nn.Parameter(torch.from_numpy(x.copy())) for x in chunks]
        opt = make_optimizer(torch, ps, c)
        traj = []
        for t in range(STEPS):
            opt.param_groups[0]["lr"] = c["lr"] * float(lrmul[t])
            gs = [g[t][:split], g[t][split:]] if split else [g[t]]
            for q, gq in zip(ps, gs):
                q.grad = torch.from_numpy(gq.copy())
            if split and t < freeze:
                ps[0].grad = None
            opt.step()
            traj.append(np.concatenate([q.detach().numpy() for q in ps]))
        save(d, case + ".traj.npy", np.stack(traj))
        for k, v in opt.state[ps[-1]].items():
            if torch.is_tensor(v) and v.numel() == N - split:
                save(d, "%s.%s.npy" % (case, k), np.concatenate([opt.state[q][k].detach().numpy() for q in ps]))


# ----------------------------------------------------------------- schedules
def keras_plateau(metrics, lr0, mode, factor, patience, min_delta, cooldown, min_lr):
    """keras.callbacks.ReduceLROnPlateau.on_epoch_end (Keras 2.x), transcribed."""
    better = (lambda a, b: a < b - min_delta) if mode == "min" else (lambda a, b: a > b + min_delta)
    best = math.inf if mode == "min" else -math.inf
    wait = cooldown_counter = 0
    lr, out = lr0, []
    for cur in metrics:
        if cooldown_counter > 0:
            cooldown_counter -= 1
            wait = 0
        if better(cur, best):
            best, wait = cur, 0
        elif not cooldown_counter > 0:
            wait += 1
            if wait >= patience:
                if lr > min_lr:
                    lr = max(lr * factor, min_lr)
                    cooldown_counter, wait = cooldown, 0
        out.append(lr)
    return out


def torch_plateau(torch, metrics, lr0, mode, factor, patience, min_delta, cooldown, min_lr):
    """Keras (patience P, cooldown C) == torch (patience P-1, cooldown max(C-1, 0)), for P >= 1.
    eps=0: torch's default eps=1e-8 skips reductions smaller than 1e-8, which Keras does not."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr0)
    s = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=mode, factor=factor, patience=patience - 1,
                                                   threshold=min_delta, threshold_mode="abs",
                                                   cooldown=max(cooldown - 1, 0), min_lr=min_lr, eps=0.0)
    out = []
    for m in metrics:
        s.step(m)
        out.append(opt.param_groups[0]["lr"])
    return out


PLATEAU_CASES = [  # lr0, mode, factor, patience, min_delta, cooldown, min_lr
    (1e-1, "min", 0.1, 3, 1e-4, 0, 0.0),
    (1e-2, "min", 0.5, 2, 1e-4, 2, 1e-3),
    (1e-1, "max", 0.1, 4, 1e-3, 3, 0.0),
    (1e-1, "min", 0.3, 1, 1e-4, 1, 0.0),
    (1e-3, "min", 0.1, 10, 1e-4, 0, 0.0),
    (1e-1, "max", 0.5, 2, 0.0, 5, 1e-4),
]


def plateau_metrics(rng, mode, n):
    """A noisy curve that improves, stalls, improves by less than min_delta, and has a NaN."""
    base = np.concatenate([np.linspace(1.0, 0.5, n // 3), np.full(n - n // 3, 0.5)])
    m = base + rng.normal(0, 0.02, n) * (rng.random(n) < 0.5)
    m[n // 2: n // 2 + 6] = 0.5 - 5e-5 * np.arange(1, 7)  # tiny improvements: below min_delta
    m[n // 4] = np.nan
    if mode == "max":
        m = 1.0 - m
    return m.astype(np.float32)


def run_sched(d):
    import torch
    # Step decay as the seed post writes it (epoch from 0).
    lr0, drop, epochs_drop = 0.1, 0.5, 10.0
    save(d, "step.npy", [lr0 * math.pow(drop, math.floor((1 + e) / epochs_drop)) for e in range(45)])

    # Cosine: torch LinearLR warmup (start 1/W, W-1 iters) then CosineAnnealingLR over the rest, per step.
    for name, lr0, min_lr, epochs, spe, warm in (("cos_a", 0.1, 0.0, 5, 7, 0), ("cos_b", 0.05, 1e-3, 6, 8, 12)):
        total = epochs * spe
        out = []
        if warm:
            p = torch.nn.Parameter(torch.zeros(1))
            opt = torch.optim.SGD([p], lr=lr0)
            s = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1.0 / warm, end_factor=1.0, total_iters=warm - 1)
            for _ in range(warm):
                out.append(opt.param_groups[0]["lr"])
                opt.step()
                s.step()
        p = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([p], lr=lr0)
        s = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warm, eta_min=min_lr)
        for _ in range(total - warm):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            s.step()
        save(d, name + ".npy", out)

    rng = np.random.default_rng(7)
    cases = []
    for i, (lr0, mode, factor, pat, md, cd, min_lr) in enumerate(PLATEAU_CASES):
        m = plateau_metrics(rng, mode, 80)
        mf = [float(x) for x in m]
        k = keras_plateau(mf, lr0, mode, factor, pat, md, cd, min_lr)
        t = torch_plateau(torch, mf, lr0, mode, factor, pat, md, cd, min_lr)
        if k != t:
            sys.exit("plateau case %d: Keras transcription and torch (patience-1, cooldown-1) disagree:\n%s\n%s"
                     % (i, k, t))
        if len(set(t)) < 3:
            sys.exit("plateau case %d: fewer than two reductions, the case tests too little" % i)
        save(d, "plateau%d.metrics.npy" % i, m)
        save(d, "plateau%d.lr.npy" % i, t)
        cases.append(i)
    with open(os.path.join(d, "plateau_cases.txt"), "w") as f:
        for i in cases:
            lr0, mode, factor, pat, md, cd, min_lr = PLATEAU_CASES[i]
            f.write("%d %r %s %r %d %r %d %r\n" % (i, lr0, mode, factor, pat, md, cd, min_lr))


# ------------------------------------------------------------- class weights
def run_cw(d):
    from sklearn.utils.class_weight import compute_class_weight
    # MURA v1.1 training images per part (normal, abnormal), and random counts.
    mura = [[2925, 2006], [3138, 1968], [1164, 661], [4059, 1484], [673, 599], [4211, 4168], [5765, 3987]]
    rng = np.random.default_rng(3)
    rand = rng.integers(1, 5000, (5, 2)).tolist()
    for name, counts in (("cw_mura", mura), ("cw_rand", rand)):
        counts = np.asarray(counts, dtype=np.int64)
        save(d, name + ".counts.npy", counts)
        paper = [[a / (a + n), n / (a + n)] for n, a in counts]  # w0 = |A|/(|A|+|N|), w1 = |N|/(|A|+|N|)
        save(d, name + ".paper.npy", paper)
        y = np.concatenate([np.zeros(counts[:, 0].sum(), int), np.ones(counts[:, 1].sum(), int)])
        save(d, name + ".balanced.npy", compute_class_weight("balanced", classes=np.array([0, 1]), y=y))


if __name__ == "__main__":
    mode, d = sys.argv[1], sys.argv[2]
    {"optim": run_optim, "sched": run_sched, "cw": run_cw}[mode](d)
