#!/usr/bin/python3
"""End-to-end training on a MURA-layout folder, mskx against PyTorch: the
whole run timed from start to exit (decoding, every epoch's training and
validation, checkpoints), one JSON line on stdout in the shape of
`mskx bench` (images_per_s = training images x epochs / wall seconds).

  e2e.py mskx  --mskx BIN --data DIR/MURA-v1.1 [options]   # `mskx train`, wall clock
  e2e.py torch --data DIR/MURA-v1.1 [options]              # PyTorch in this process

Both sides train the same torchvision DenseNet-BC (one logit), with Adam at
1e-4, BCE-with-logits without class weights, shuffled batches (the last partial one dropped), no
augmentation (mskx --no-augment), a validation pass over the valid split
after each epoch, and the weights saved after each epoch. Each side decodes
every image once: mskx through its decoded cache (built in the run folder
on the first epoch; --cache is passed so this holds whatever the memory
budget), PyTorch into memory (PIL, grey, resized to SIZE x SIZE bilinear,
ImageNet normalisation, T decoding processes) before the first epoch.

options: --arch A --size S --batch B --epochs E --precision fp32|bf16 --threads T --seed N
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def images_of(data, split):
    """(path, label) of every image of a split, in a fixed order."""
    out = []
    base = os.path.join(data, split)
    for dirpath, dirs, files in os.walk(base):
        dirs.sort()
        for f in sorted(files):
            if f.lower().endswith((".png", ".jpg", ".jpeg")):
                out.append((os.path.join(dirpath, f), 1.0 if "positive" in dirpath else 0.0))
    return out


def child_peak_mb():
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def run_mskx(a, n_train):
    out = tempfile.mkdtemp(prefix="mskx-e2e-")
    cmd = [a.mskx, "train", "--data", a.data, "--out", os.path.join(out, "run"), "--arch", a.arch,
           "--size", str(a.size), "--batch", str(a.batch), "--epochs", str(a.epochs), "--precision", a.precision,
           "--threads", str(a.threads), "--seed", str(a.seed), "--lr", "1e-4", "--no-augment", "--cache", "--class-weights", "none"]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    try:
        if p.returncode != 0:
            raise SystemExit("mskx train failed (exit %d): %s" % (p.returncode, p.stderr[-600:]))
        logs = [json.loads(l) for l in open(os.path.join(out, "run", "log.jsonl"))]
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {"engine": "onednn", "seconds": wall, "peak_rss_mb": child_peak_mb(),
            "epoch_seconds": [round(l["seconds"], 3) for l in logs], "val_loss_last": logs[-1]["val"]["loss"]}


def decode(job):
    from PIL import Image
    import numpy as np
    path, size = job
    im = Image.open(path).convert("L").resize((size, size), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def run_torch(a, train, valid):
    import multiprocessing
    import numpy as np
    import torch
    from torch_bench import build_model

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    t0 = time.perf_counter()
    with multiprocessing.Pool(a.threads) as pool:
        px = pool.map(decode, [(p, a.size) for p, _ in train + valid], chunksize=16)
    g = torch.from_numpy(np.stack(px)).float().div_(255.0).unsqueeze(1)      # N,1,S,S
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    x_all = ((g - mean) / std).contiguous(memory_format=torch.channels_last)  # N,3,S,S
    y_all = torch.tensor([l for _, l in train + valid]).view(-1, 1)
    xt, yt, xv, yv = x_all[:len(train)], y_all[:len(train)], x_all[len(train):], y_all[len(train):]
    decode_s = time.perf_counter() - t0
    model = build_model(a.arch, False).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    bf16 = a.precision == "bf16"
    ckpt = tempfile.NamedTemporaryFile(prefix="torch-e2e-", suffix=".pt", delete=False).name
    epoch_s, val_loss = [], None
    try:
        for epoch in range(a.epochs):
            e0 = time.perf_counter()
            model.train()
            order = torch.randperm(len(train))
            for b in range(len(train) // a.batch):
                idx = order[b * a.batch:(b + 1) * a.batch]
                opt.zero_grad(set_to_none=True)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    z = model(xt[idx])
                loss = loss_fn(z.float(), yt[idx])
                loss.backward()
                opt.step()
            model.eval()
            total = 0.0
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                for v in range(0, len(valid), a.batch):
                    z = model(xv[v:v + a.batch])
                    total += float(loss_fn(z.float(), yv[v:v + a.batch])) * len(z)
            val_loss = total / max(1, len(valid))
            torch.save(model.state_dict(), ckpt)
            epoch_s.append(round(time.perf_counter() - e0, 3))
    finally:
        os.unlink(ckpt)
    return {"engine": "pytorch", "decode_seconds": round(decode_s, 3), "epoch_seconds": epoch_s,
            "val_loss_last": val_loss, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "torch_version": torch.__version__}


def main():
    p = argparse.ArgumentParser(description="end-to-end training, one JSON line")
    p.add_argument("side", choices=["mskx", "torch"])
    p.add_argument("--mskx", default=os.path.join(ROOT, "build", "mskx"))
    p.add_argument("--data", required=True, help="a MURA-v1.1 folder (e.g. from mskx synth)")
    p.add_argument("--arch", default="densenet:growth=12,blocks=2-2-2-2,init=24,bn_size=4")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    train, valid = images_of(a.data, "train"), images_of(a.data, "valid")
    if not train or not valid:
        raise SystemExit("%s: no train/valid images" % a.data)
    t0 = time.perf_counter()
    res = run_mskx(a, len(train)) if a.side == "mskx" else run_torch(a, train, valid)
    wall = res.pop("seconds", None) or time.perf_counter() - t0
    used = (len(train) // a.batch) * a.batch * a.epochs
    res.update({"arch": a.arch, "size": a.size, "batch": a.batch, "precision": a.precision, "mode": "e2e",
                "epochs": a.epochs, "train_images": len(train), "valid_images": len(valid),
                "threads": a.threads, "seconds": round(wall, 3), "images_per_s": round(used / wall, 3),
                "ms_per_batch_median": round(1e3 * wall / max(1, used // a.batch), 3),
                "peak_rss_mb": round(res["peak_rss_mb"], 3)})
    print(json.dumps(res))


if __name__ == "__main__":
    main()
