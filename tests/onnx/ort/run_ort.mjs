// ONNX Runtime (onnxruntime-node, CPU execution provider) for the ONNX export tests.
//   node run_ort.mjs run MODEL.onnx INPUT.f32 N S      -> JSON {"logit": [...], "probability": [...], "metadata": {...}}
//   node run_ort.mjs bench MODEL.onnx N S SECONDS [THREADS] -> JSON {"img_per_s": ...} (random input, after warm-up)
// INPUT.f32: N*3*S*S little-endian float32 values, NCHW.
import fs from 'node:fs';
import ort from 'onnxruntime-node';

const [mode, model, ...rest] = process.argv.slice(2);
const opts = { executionProviders: ['cpu'], graphOptimizationLevel: 'all' };

if (mode === 'run') {
  const [input, n, s] = [rest[0], Number(rest[1]), Number(rest[2])];
  const buf = fs.readFileSync(input);
  const x = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  if (x.length !== n * 3 * s * s) throw new Error(`input has ${x.length} floats, expected ${n * 3 * s * s}`);
  const sess = await ort.InferenceSession.create(model, opts);
  const out = await sess.run({ input: new ort.Tensor('float32', x, [n, 3, s, s]) });
  console.log(JSON.stringify({ logit: Array.from(out.logit.data), probability: Array.from(out.probability.data),
    inputs: sess.inputNames, outputs: sess.outputNames }));
} else if (mode === 'bench') {
  const [n, s, seconds, threads] = [Number(rest[0]), Number(rest[1]), Number(rest[2]), Number(rest[3] || 0)];
  if (threads) opts.intraOpNumThreads = threads;
  const sess = await ort.InferenceSession.create(model, opts);
  const x = new Float32Array(n * 3 * s * s);
  for (let i = 0; i < x.length; i++) x[i] = Math.sin(i) * 2;
  const feeds = { input: new ort.Tensor('float32', x, [n, 3, s, s]) };
  for (let i = 0; i < 2; i++) await sess.run(feeds); // warm-up
  let iters = 0;
  const t0 = process.hrtime.bigint();
  let el = 0;
  while (el < seconds || iters < 3) {
    await sess.run(feeds);
    iters++;
    el = Number(process.hrtime.bigint() - t0) / 1e9;
  }
  console.log(JSON.stringify({ batch: n, size: s, iters, seconds: el, img_per_s: (iters * n) / el,
    ms_per_batch: (1000 * el) / iters, threads: threads || 'default' }));
} else {
  console.error('usage: node run_ort.mjs run|bench ...');
  process.exit(2);
}
