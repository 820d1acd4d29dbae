"""Checks exported ONNX files for tests/onnx/onnx_test.sh.

  onnx_check.py check MODEL.onnx SAFETENSORS FOLDED
      onnx.load + onnx.checker.check_model(full_check=True); inputs, outputs,
      opset, metadata_props; without folding, one initializer per tensor of the
      model file with the same name, shape and bytes (Inception-v3's AuxLogits,
      used in training only, are left out; its transform_input constants added).
  onnx_check.py input MODEL.onnx OUT.f32 IMG.png...
      the network input from the images, built only from the file's
      metadata_props (mskx.size, mskx.mean, mskx.std): what a consumer does
  onnx_check.py compare ORT.json PREDICT.json NAME [STUDY_INDEX]
      ONNX Runtime's probabilities vs the images of `mskx predict --json`
Prints one PASS/FAIL line per check. Test tooling only."""
import json
import os
import sys

import numpy as np

TOL = 1e-4


def report(name, ok, why=""):
    print(("PASS %s" % name) if ok else ("FAIL %s: %s" % (name, why)), flush=True)


def meta_of(m):
    return {p.key: p.value for p in m.metadata_props}


def check(path, st_path, folded):
    import onnx
    import onnx.numpy_helper  # not imported by `import onnx` in every version (Debian's 1.12)
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
    from sttools import load_safetensors
    tag = os.path.basename(path)
    m = onnx.load(path)
    try:
        onnx.checker.check_model(m, full_check=True)
        report("checker_full_%s" % tag, True)
    except Exception as ex:  # noqa: BLE001 - the checker's message is the report
        report("checker_full_%s" % tag, False, str(ex)[:300])
        return
    md = meta_of(m)
    state, smeta = load_safetensors(st_path)
    g = m.graph
    ok = [i.name for i in g.input] == ["input"] and [o.name for o in g.output] == ["logit", "probability"]
    dims = [d.dim_value or d.dim_param for d in g.input[0].type.tensor_type.shape.dim]
    ok = ok and dims[1:] == [3, int(smeta["size"]), int(smeta["size"])]
    report("io_%s" % tag, ok, "inputs %s outputs %s dims %s" % ([i.name for i in g.input], [o.name for o in g.output], dims))
    want = {"mskx.format": "mskx-onnx-1", "mskx.arch": smeta["arch"], "mskx.size": str(smeta["size"]),
            "mskx.keep_aspect": str(smeta["keep_aspect"])}
    bad = {k: (md.get(k), v) for k, v in want.items() if md.get(k) != v}
    mean = [float(v) for v in md.get("mskx.mean", "").split(",")]
    ok = not bad and np.allclose(mean, [float(v) for v in smeta["mean"].split(",")], atol=1e-7) and \
        abs(float(md["mskx.threshold"]) - float(smeta["threshold"])) < 1e-12 and "mskx.preprocessing" in md and \
        json.loads(md["mskx.model_metadata"])["arch"] == smeta["arch"]
    report("metadata_%s" % tag, ok, str(bad))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in g.initializer}
    if folded:
        bns = [n for n in g.node if n.op_type == "BatchNormalization"]
        convs = [n for n in g.node if n.op_type == "Conv"]
        # No batch norm reads a convolution's output any more (DenseNet's
        # norm1 and transition norms read concatenations and stay).
        conv_out = {c.output[0] for c in convs}
        unfolded = [n.name or n.output[0] for n in bns if n.input[0] in conv_out]
        report("folded_%s" % tag, not unfolded and len(bns) < sum(1 for k in state if k.endswith("running_mean")),
               "%d BN nodes left, %d after a Conv: %s" % (len(bns), len(unfolded), unfolded[:3]))
    else:
        state = {k: v for k, v in state.items() if not k.startswith("AuxLogits.")}
        extra = [k for k in inits if k not in state and not k.startswith("transform_input.")]
        diff = [k for k in state if k not in inits or inits[k].shape != state[k].shape
                or inits[k].tobytes() != state[k].astype("<f4").tobytes()]
        report("weights_are_initializers_%s" % tag, not diff and not extra, str(diff[:5] + extra[:5]))


def make_input(path, out, images):
    import onnx
    from PIL import Image
    md = meta_of(onnx.load(path, load_external_data=False))
    s = int(md["mskx.size"])
    mean = [float(v) for v in md["mskx.mean"].split(",")]
    std = [float(v) for v in md["mskx.std"].split(",")]
    xs = []
    for p in images:
        g = np.asarray(Image.open(p).convert("L"), dtype=np.float32) / np.float32(255)
        assert g.shape == (s, s), "test images are made at the model size (no resize here)"
        xs.append(np.stack([(g - np.float32(mean[c])) / np.float32(std[c]) for c in range(3)]))
    np.asarray(xs, dtype="<f4").tofile(out)


def compare(ort_json, predict_json, study=None):
    o = json.load(open(ort_json))
    s = json.load(open(predict_json))
    studies = s if study is None else [s[int(study)]]
    ref = [i["probability"] for x in studies for i in x["images"]]
    got = o["probability"][:len(ref)]
    d = max(abs(a - b) for a, b in zip(got, ref)) if ref else 1
    sig = max(abs(1 / (1 + np.exp(-z)) - p) for z, p in zip(o["logit"], o["probability"]))
    print("max |ORT - mskx predict| = %.3g over %d images" % (d, len(ref)), flush=True)
    return d < TOL and len(got) == len(ref) and sig < 1e-6, "max diff %.3g (%s vs %s)" % (d, got, ref)


if __name__ == "__main__":
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "check":
        check(a[0], a[1], a[2] == "1")
    elif cmd == "input":
        make_input(a[0], a[1], a[2:])
    elif cmd == "compare":
        ok, why = compare(a[0], a[1], a[3] if len(a) > 3 else None)
        report(a[2], ok, why)
    else:
        sys.exit("unknown command " + cmd)
