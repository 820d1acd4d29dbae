"""Writes the fixtures of tests/models/import_test.sh: PyTorch checkpoints
written by torch.save (bare, wrapped, module.-prefixed, old DenseNet keys, an
f16 tensor, non-contiguous and offset tensors), Keras-layout HDF5 files built
with h5py from the same torchvision weights (Keras's layer names, HWIO
kernels, (in, out) dense kernels), hostile checkpoints, and torchvision's
logits (float64) for each importable case.

usage: /usr/bin/python3 make_import_fixtures.py OUTDIR [--size S] [--small]
--small: only the tiny and hostile files (the fuzz seeds, tests/fuzz/make_corpus.sh).
Writes OUTDIR/cases.txt: one line per parity case "name arch file ref.npy".
"""
import argparse
import collections
import io
import json
import os
import pickle
import zipfile

import h5py
import numpy as np
import torch
import torchvision

KERAS_EPS = 1.001e-5


def randomise(m, g, size):
    """Convolutions scaled by 0.01, so every batch norm sees variances near
    1e-4 and the epsilon (1e-5 vs Keras's 1.001e-5) changes the logits far
    beyond float32 noise; random affine parameters; running statistics
    calibrated on a batch (train mode, cumulative average), so activations
    stay normalised in eval mode."""
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.Conv2d):
                mod.weight.mul_(0.01)
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.weight.copy_(1 + 0.2 * torch.randn(mod.weight.shape, generator=g))
                mod.bias.copy_(0.1 * torch.randn(mod.bias.shape, generator=g))
                mod.reset_running_stats()
                mod.momentum = None
        m.train()
        m(torch.randn(4, 3, size, size, generator=g))
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.momentum = 0.1


def build(arch, classes, seed, size):
    torch.manual_seed(seed)
    m = getattr(torchvision.models, arch)(weights=None, num_classes=classes)
    randomise(m, torch.Generator().manual_seed(seed + 1), size)
    return m.eval()


def reference(m, sd, x, eps=None):
    """torchvision's logits (float64) with weights sd; a 2-way head gives z1 - z0."""
    m = m.double()
    m.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in sd.items()})
    if eps is not None:
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.eps = eps
    with torch.no_grad():
        z = m(x.double())
    if z.shape[1] == 2:
        z = z[:, 1:2] - z[:, 0:1]
    return z.float().numpy()


def old_densenet_keys(sd):
    out = collections.OrderedDict()
    for k, v in sd.items():
        for mod in ("norm", "relu", "conv"):
            for d in ("1", "2"):
                k = k.replace(".%s%s." % (mod, d), ".%s.%s." % (mod, d))
        out[k] = v
    return out


def tweak_storage(sd, key_f16, key_view, key_offset):
    """One f16 tensor, one non-contiguous tensor, one with a storage offset;
    returns (state dict to save, the values torchvision should see)."""
    save, seen = collections.OrderedDict(), collections.OrderedDict()
    for k, v in sd.items():
        if k == key_f16:
            h = v.half()
            save[k], seen[k] = h, h.float()
        elif k == key_view:
            t = v.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)  # same values, channels-last strides
            assert not t.is_contiguous()
            save[k], seen[k] = t, v
        elif k == key_offset:
            big = torch.cat([torch.randn(7), v.flatten(), torch.randn(5)])
            t = big[7:7 + v.numel()].view(v.shape)  # torch.save keeps the whole storage
            assert t.storage_offset() == 7
            save[k], seen[k] = t, v
        else:
            save[k] = seen[k] = v
    return save, seen


# ---- Keras layout ----

def keras_densenet_names(sd, stem_style):
    """torchvision name prefix -> (Keras layer name, kind) for a DenseNet."""
    m = {}
    stem_conv, stem_bn = ("conv1/conv", "conv1/bn") if stem_style == "keras2" else ("conv1_conv", "conv1_bn")
    m["features.conv0"] = (stem_conv, "conv")
    m["features.norm0"] = (stem_bn, "bn")
    m["features.norm5"] = ("bn", "bn")
    for k in sd:
        p = k.split(".")
        if p[1].startswith("denseblock"):
            b, l = int(p[1][10:]), int(p[2][10:])
            pre = "conv%d_block%d" % (b + 1, l)
            base = ".".join(p[:4])
            m[base] = {"norm1": (pre + "_0_bn", "bn"), "conv1": (pre + "_1_conv", "conv"),
                       "norm2": (pre + "_1_bn", "bn"), "conv2": (pre + "_2_conv", "conv")}[p[3]]
        elif p[1].startswith("transition"):
            t = int(p[1][10:])
            m[".".join(p[:3])] = ("pool%d_%s" % (t + 1, "bn" if p[2] == "norm" else "conv"),
                                  "bn" if p[2] == "norm" else "conv")
    m["classifier"] = ("predictions", "dense")
    return m


def keras_weights(sd, names):
    """Ordered [(layer, [(weight name, array)])] in Keras's layouts."""
    layers = collections.OrderedDict()
    bn_vars = [("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
               ("running_var", "moving_variance")]
    for prefix, (layer, kind) in names.items():
        w = []
        if kind == "conv":
            w.append(("kernel", sd[prefix + ".weight"].numpy().transpose(2, 3, 1, 0)))  # OIHW -> HWIO
        elif kind == "bn":
            w += [(kv, sd[prefix + "." + tv].numpy()) for tv, kv in bn_vars]
        else:
            w.append(("kernel", sd[prefix + ".weight"].numpy().T))  # (out, in) -> (in, out)
            w.append(("bias", sd[prefix + ".bias"].numpy()))
        layers[layer] = [("%s/%s:0" % (layer, v), a.astype(np.float32)) for v, a in w]
    return layers


def write_keras(path, layers, model_save, config=None):
    with h5py.File(path, "w") as f:
        if model_save:
            f.attrs["keras_version"] = b"2.11.0"
            f.attrs["backend"] = b"tensorflow"
            if config is not None:
                f.attrs["model_config"] = json.dumps(config).encode()
            g = f.create_group("model_weights")
        else:
            g = f
        names = ["input_1"] + list(layers) + ["relu"]
        g.attrs["layer_names"] = np.array([n.encode() for n in names])
        for n in names:
            lg = g.create_group(n)
            ws = layers.get(n, [])
            # Keras writes an empty float array for layers without weights.
            lg.attrs["weight_names"] = np.array([w.encode() for w, _ in ws]) if ws else np.array([])
            for wn, a in ws:
                lg.create_dataset(wn, data=a)


def keras_config(layers, eps, activation):
    cfg = []
    for n in layers:
        if n.endswith("bn"):
            cfg.append({"class_name": "BatchNormalization", "config": {"name": n, "epsilon": eps, "axis": [3]}})
        elif n == "predictions":
            cfg.append({"class_name": "Dense", "config": {"name": n, "activation": activation}})
    return {"class_name": "Functional", "config": {"name": "densenet121", "layers": cfg}}


# ---- hostile checkpoints ----

def zip_with(path, entries):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for n, b in entries:
            z.writestr(n, b)


class FakeStorage:
    def __init__(self, key, numel):
        self.key, self.numel = key, numel


class Rebuild:
    def __init__(self, storage, size, stride):
        self.args = (storage, 0, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            return ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
        return None


def pickled(obj):
    b = io.BytesIO()
    Pickler(b, protocol=2).dump(obj)
    return b.getvalue()


def hostile(out):
    marker = os.path.join(out, "pwned")
    evil = b"\x80\x02cposix\nsystem\nq\x00X" + len("touch " + marker).to_bytes(4, "little") + \
        ("touch " + marker).encode() + b"\x85R."
    zip_with(os.path.join(out, "evil_system.pth"), [("evil/data.pkl", evil), ("evil/version", b"3\n")])
    # a valid small checkpoint, then damaged copies of it
    good = os.path.join(out, "small.pth")
    torch.save(collections.OrderedDict(w=torch.arange(64, dtype=torch.float32)), good)
    raw = open(good, "rb").read()
    zf = zipfile.ZipFile(good)
    info = zf.getinfo("small/data/0")
    # the data start from the local header (torch pads its extra field for alignment)
    nlen, xlen = int.from_bytes(raw[info.header_offset + 26:info.header_offset + 28], "little"), \
        int.from_bytes(raw[info.header_offset + 28:info.header_offset + 30], "little")
    off = info.header_offset + 30 + nlen + xlen
    bad = bytearray(raw)
    bad[off + 5] ^= 0xFF
    open(os.path.join(out, "bad_crc.pth"), "wb").write(bytes(bad))
    open(os.path.join(out, "truncated.pth"), "wb").write(raw[:len(raw) // 2])
    ents = [(i.filename, zf.read(i.filename)) for i in zf.infolist()]
    zip_with(os.path.join(out, "short_storage.pth"),
             [(n, b[:100] if n == "small/data/0" else b) for n, b in ents])
    sd = {"w": Rebuild(FakeStorage("0", 4), (1 << 40, 1 << 40), (1, 1))}
    zip_with(os.path.join(out, "absurd_size.pth"),
             [("x/data.pkl", pickled(sd)), ("x/data/0", b"\0" * 16), ("x/version", b"3\n")])
    sd = {"w": Rebuild(FakeStorage("0", 4), (8,), (1,))}
    zip_with(os.path.join(out, "beyond_storage.pth"),
             [("x/data.pkl", pickled(sd)), ("x/data/0", b"\0" * 16), ("x/version", b"3\n")])
    zip_with(os.path.join(out, "bad_memo.pth"), [("x/data.pkl", b"\x80\x02)r\xff\xff\xff\xff.")])
    zip_with(os.path.join(out, "unset_memo.pth"), [("x/data.pkl", b"\x80\x02j\xff\xff\xff\xff.")])
    zip_with(os.path.join(out, "deep.pth"), [("x/data.pkl", b"\x80\x02" + b"(" * 1000 + b".")])
    zip_with(os.path.join(out, "not_torch.zip"), [("readme.txt", b"hello")])
    # Keras ResNet50 names (ResNet v1): refused, never approximated.
    with h5py.File(os.path.join(out, "keras_resnet.h5"), "w") as f:
        f.attrs["layer_names"] = np.array([b"conv2_block1_0_conv"])
        g = f.create_group("conv2_block1_0_conv")
        g.attrs["weight_names"] = np.array([b"conv2_block1_0_conv/kernel:0"])
        g.create_dataset("conv2_block1_0_conv/kernel:0", data=np.zeros((1, 1, 4, 8), np.float32))
    # A 4-element weight declared in 256 MiB chunks (never written, so the file
    # stays small; libhdf5 would allocate a whole chunk to read it) and one of
    # 16-byte floats: both refused before libhdf5 reads any data.
    for name, kw in (("keras_huge_chunk.h5", dict(shape=(4,), maxshape=(None,), chunks=(1 << 26,), dtype=np.float32)),
                     ("keras_long_double.h5", dict(data=np.zeros(4, np.longdouble)))):
        with h5py.File(os.path.join(out, name), "w") as f:
            f.attrs["layer_names"] = np.array([b"conv1/bn"])
            g = f.create_group("conv1/bn")
            g.attrs["weight_names"] = np.array([b"conv1/bn/beta:0"])
            g.create_dataset("conv1/bn/beta:0", **kw)


def tiny_files(out, classes=1000):
    """A tiny DenseNet for train --pretrained: .pth and Keras .h5 (ImageNet-style 1000-way heads)."""
    torch.manual_seed(10)
    tiny = torchvision.models.DenseNet(growth_rate=4, block_config=(1, 1), num_init_features=8, bn_size=2,
                                       num_classes=classes)
    sd = tiny.state_dict()
    torch.save(sd, os.path.join(out, "tiny.pth"))
    write_keras(os.path.join(out, "tiny_keras.h5"), keras_weights(sd, keras_densenet_names(sd, "keras2")), True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--small", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(2)
    os.makedirs(a.out, exist_ok=True)
    if a.small:
        tiny_files(a.out, classes=2)  # small enough for seeds (< 64 KiB)
        hostile(a.out)
        return
    x = torch.randn(2, 3, a.size, a.size, generator=torch.Generator().manual_seed(7))
    np.save(os.path.join(a.out, "x.npy"), x.numpy())
    cases = []

    def case(name, arch, fname, ref):
        np.save(os.path.join(a.out, name + "_ref.npy"), ref)
        cases.append("%s %s %s %s_ref.npy" % (name, arch, fname, name))

    # densenet121: bare, 1-logit head, with an f16, a non-contiguous and an offset tensor
    m = build("densenet121", 1, 1, a.size)
    sd = m.state_dict()
    save, seen = tweak_storage(sd, "features.denseblock1.denselayer1.conv1.weight", "features.conv0.weight",
                               "features.norm5.bias")
    torch.save(save, os.path.join(a.out, "d121_bare.pth"))
    case("d121_bare", "densenet121", "d121_bare.pth", reference(m, seen, x))
    # densenet121, wrapped {"state_dict": ...} with DataParallel's module. prefix and a 2-way head
    m = build("densenet121", 2, 2, a.size)
    sd = m.state_dict()
    wrapped = {"epoch": 3, "arch": "densenet121", "best_acc1": torch.tensor(0.5),
               "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "momentum": 0.9, "nesterov": False,
                                                            "params": [0, 1, 2]}]},
               "state_dict": collections.OrderedDict(("module." + k, v) for k, v in sd.items())}
    torch.save(wrapped, os.path.join(a.out, "d121_wrapped.pth"))
    case("d121_wrapped", "densenet121", "d121_wrapped.pth", reference(m, sd, x))
    # old-style keys (norm.1, conv.2, ...) in a {"model": ...} wrapper
    m = build("densenet121", 1, 3, a.size)
    sd = m.state_dict()
    torch.save({"model": old_densenet_keys(sd)}, os.path.join(a.out, "d121_oldkeys.pth"))
    case("d121_oldkeys", "densenet121", "d121_oldkeys.pth", reference(m, sd, x))
    # densenet121 with ImageNet's 1000-way head: imported with a re-initialised head
    torch.save(build("densenet121", 1000, 4, a.size).state_dict(), os.path.join(a.out, "d121_imagenet.pth"))
    # resnet50: bare 1-logit, and module.-prefixed 2-way
    m = build("resnet50", 1, 5, a.size)
    sd = m.state_dict()
    torch.save(sd, os.path.join(a.out, "r50_bare.pth"))
    case("r50_bare", "resnet50", "r50_bare.pth", reference(m, sd, x))
    m = build("resnet50", 2, 6, a.size)
    sd = m.state_dict()
    torch.save(collections.OrderedDict(("module." + k, v) for k, v in sd.items()),
               os.path.join(a.out, "r50_module.pth"))
    case("r50_module", "resnet50", "r50_module.pth", reference(m, sd, x))

    # Keras layouts from torchvision densenet121 weights
    m = build("densenet121", 1, 8, a.size)
    sd = m.state_dict()
    layers = keras_weights(sd, keras_densenet_names(sd, "keras2"))
    # model.save layout, model_config stating torchvision's epsilon: torchvision's logits
    write_keras(os.path.join(a.out, "k121_save_eps1e-5.h5"), layers, True, keras_config(layers, 1e-5, "sigmoid"))
    case("k121_save_eps1e-5", "densenet121", "k121_save_eps1e-5.h5", reference(m, sd, x))
    # save_weights layout, no model_config: Keras's 1.001e-5
    write_keras(os.path.join(a.out, "k121_weights.h5"), layers, False)
    case("k121_weights_keras_eps", "densenet121", "k121_weights.h5",
         reference(build("densenet121", 1, 8, a.size), sd, x, eps=KERAS_EPS))
    # torchvision's epsilon on the same weights: the test checks the two differ by far more than its tolerance
    np.save(os.path.join(a.out, "k121_weights_eps1e-5_ref.npy"), reference(build("densenet121", 1, 8, a.size), sd, x))
    # Keras 3 stem names, a 2-way softmax head, model_config with Keras's epsilon
    m = build("densenet121", 2, 9, a.size)
    sd = m.state_dict()
    layers = keras_weights(sd, keras_densenet_names(sd, "keras3"))
    write_keras(os.path.join(a.out, "k121_softmax2.h5"), layers, True, keras_config(layers, KERAS_EPS, "softmax"))
    case("k121_softmax2", "densenet121", "k121_softmax2.h5", reference(m, sd, x, eps=KERAS_EPS))
    # the same weights claiming two sigmoid outputs: refused
    write_keras(os.path.join(a.out, "k121_sigmoid2.h5"), layers, True, keras_config(layers, KERAS_EPS, "sigmoid"))
    tiny_files(a.out)
    hostile(a.out)
    with open(os.path.join(a.out, "cases.txt"), "w") as f:
        f.write("\n".join(cases) + "\n")


if __name__ == "__main__":
    main()
