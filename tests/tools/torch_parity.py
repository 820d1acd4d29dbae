"""Writes a PyTorch/torchvision reference for `mskx forward`: a randomly
initialised torchvision model with randomised batch-norm running statistics
(one-logit head), an input batch, targets, eval- and train-mode logits, the
train-mode loss and every parameter gradient.

usage: /usr/bin/python3 torch_parity.py ARCH OUTDIR [--size S] [--batch N] [--seed K]
ARCH: densenet121|densenet169|densenet201|resnet50|inception_v3|densenet:growth=G,blocks=A-B-C,init=F,bn_size=S

inception_v3 is built as torchvision's ImageNet weights are used (transform_input
on, recorded in the weights' metadata), with one-logit fc and AuxLogits.fc and
dropout off (mskx forward --dropout 0); its train-mode loss is torchvision's
recipe main + AUX_WEIGHT * aux.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.dirname(__file__))
from sttools import save_safetensors  # noqa: E402


def build(arch):
    if arch.startswith("densenet:"):
        kv = dict(p.split("=") for p in arch[len("densenet:"):].split(","))
        blocks = tuple(int(b) for b in kv["blocks"].split("-"))
        m = torchvision.models.DenseNet(growth_rate=int(kv.get("growth", 32)), block_config=blocks,
                                        num_init_features=int(kv.get("init", 64)), bn_size=int(kv.get("bn_size", 4)),
                                        num_classes=1)
        return m
    if arch == "inception_v3":
        m = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=True, transform_input=True)
        m.fc = torch.nn.Linear(2048, 1)
        m.AuxLogits.fc = torch.nn.Linear(768, 1)
        m.dropout = torch.nn.Identity()
        return m
    m = getattr(torchvision.models, arch)(weights=None)
    if arch.startswith("densenet"):
        m.classifier = torch.nn.Linear(m.classifier.in_features, 1)
    else:
        m.fc = torch.nn.Linear(m.fc.in_features, 1)
    return m


AUX_WEIGHT = 0.4  # mskx's default --aux-weight (torchvision's reference recipe)


def train_loss(m, x, y):
    """Train-mode logits and loss (with Inception's auxiliary loss)."""
    out = m(x)
    if isinstance(out, tuple):  # InceptionOutputs(logits, aux_logits)
        f = torch.nn.functional.binary_cross_entropy_with_logits
        return out[0], f(out[0], y) + AUX_WEIGHT * f(out[1], y)
    return out, torch.nn.functional.binary_cross_entropy_with_logits(out, y)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("arch")
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(2)
    os.makedirs(a.out, exist_ok=True)
    m = build(a.arch)
    g = torch.Generator().manual_seed(a.seed + 1)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                # Non-trivial affine parameters and running statistics, so eval mode is really tested.
                mod.weight.copy_(1 + 0.2 * torch.randn(mod.weight.shape, generator=g))
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=g))
                mod.running_mean.copy_(0.1 * torch.randn(mod.running_mean.shape, generator=g))
                mod.running_var.copy_(0.5 + torch.rand(mod.running_var.shape, generator=g))
    if a.arch == "inception_v3":
        # Its trunc-normal init (std 0.1) with unit running statistics makes the
        # eval logits ~1e10; running statistics of a batch (then perturbed) keep
        # every activation O(1), so a wrong branch shows in the eval logits.
        bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm2d)]
        for mod in bns:
            mod.momentum = 1.0
        m.train()
        with torch.no_grad():
            m(torch.randn(2, 3, a.size, a.size, generator=g))
            for mod in bns:
                mod.momentum = 0.1
                mod.running_var.mul_(0.8 + 0.4 * torch.rand(mod.running_var.shape, generator=g))
                mod.running_mean.add_(0.1 * torch.randn(mod.running_mean.shape, generator=g))
    state = {k: v.detach().numpy().copy() for k, v in m.state_dict().items()
             if not k.endswith("num_batches_tracked")}
    meta = {"arch": a.arch}
    if a.arch == "inception_v3":
        meta["transform_input"] = "1"
    save_safetensors(os.path.join(a.out, "weights.safetensors"), state, meta)
    x = torch.randn(a.batch, 3, a.size, a.size, generator=g)
    y = (torch.rand(a.batch, 1, generator=g) > 0.5).float()
    np.save(os.path.join(a.out, "x.npy"), x.numpy())
    np.save(os.path.join(a.out, "y.npy"), y.numpy())
    # PyTorch's own float32 gradients: their distance from the float64 reference
    # measures the float32 noise of the task (see compare_parity.py).
    m.train()
    _, loss32 = train_loss(m, x, y)
    loss32.backward()
    save_safetensors(os.path.join(a.out, "grads_torch32.safetensors"),
                     {k: p.grad.numpy() for k, p in m.named_parameters()})
    m.zero_grad(set_to_none=True)
    with torch.no_grad():  # undo the running-statistics update of that pass
        sd = m.state_dict()
        for k, v in state.items():
            sd[k].copy_(torch.from_numpy(v))
    # PyTorch's CPU autocast in bf16 (convolutions in bf16, their input
    # gradients bf16 too; batch norm in float32): the accuracy class of a bf16
    # training step, for `mskx forward --precision bf16 --mode train`.
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, loss16 = train_loss(m, x, y)
    loss16.float().backward()
    save_safetensors(os.path.join(a.out, "grads_torch_bf16.safetensors"),
                     {k: p.grad.float().numpy() for k, p in m.named_parameters()})
    m.zero_grad(set_to_none=True)
    with torch.no_grad():
        sd = m.state_dict()
        for k, v in state.items():
            sd[k].copy_(torch.from_numpy(v))
    # The reference is computed in float64 from the float32 weights and inputs, so
    # it is (nearly) exact and the comparison measures our float32 error alone.
    m = m.double()
    xd, yd = x.double(), y.double()
    m.eval()
    with torch.no_grad():
        np.save(os.path.join(a.out, "logits_eval.npy"), m(xd).float().numpy())
    m.train()
    out, loss = train_loss(m, xd, yd)
    loss.backward()
    np.save(os.path.join(a.out, "logits_train.npy"), out.detach().float().numpy())
    with open(os.path.join(a.out, "loss.txt"), "w") as f:
        f.write("%.9g\n" % loss.item())
    grads = {k: p.grad.float().numpy() for k, p in m.named_parameters()}
    save_safetensors(os.path.join(a.out, "grads.safetensors"), grads)


if __name__ == "__main__":
    main()
