// ONNX Runtime (onnxruntime-node, CPU provider) on an ONNX model: logits for a set of inputs and
// the time per image at batch 1 and batch 64, as the median of --runs passes.
//   node bench/ort_infer.js MODEL --shape N,C,H,W [--input FILE.f32] [--logits OUT.f32]
//        [--threads 2] [--runs 5] [--b1-images 1000]
// Without --input the inputs are uniform noise. Prints one JSON line:
//   {"ort": "1.30.0", "threads": 2, "b1_ms": ..., "b64_ms": ..., "b64_images_per_s": ...}
// onnxruntime-node is resolved from NODE_PATH (tests/onnx/verify.sh installs it into .peers/).
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function parse(argv) {
  const o = { threads: 2, runs: 5, b1Images: 1000 };
  o.model = argv[0];
  for (let i = 1; i < argv.length; i += 2) {
    const k = argv[i], v = argv[i + 1];
    if (k === '--shape') o.shape = v.split(',').map(Number);
    else if (k === '--input') o.input = v;
    else if (k === '--logits') o.logits = v;
    else if (k === '--threads') o.threads = Number(v);
    else if (k === '--runs') o.runs = Number(v);
    else if (k === '--b1-images') o.b1Images = Number(v);
    else throw new Error(`unknown option ${k}`);
  }
  if (!o.model || !o.shape || o.shape.length < 2) throw new Error('need MODEL and --shape N,...');
  return o;
}

const median = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];

async function main() {
  const o = parse(process.argv.slice(2));
  const session = await ort.InferenceSession.create(o.model, {
    intraOpNumThreads: o.threads, interOpNumThreads: 1, graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
  const [n, ...rest] = o.shape;
  const per = rest.reduce((a, b) => a * b, 1);
  let data;
  if (o.input) {
    const b = fs.readFileSync(o.input);
    data = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
    if (data.length !== n * per) throw new Error(`${o.input}: ${data.length} floats, want ${n * per}`);
  } else {
    data = new Float32Array(n * per).map(() => Math.random());
  }
  const inName = session.inputNames[0], outName = session.outputNames[0];
  const batch = async (start, count) => {
    const x = new ort.Tensor('float32', data.subarray(start * per, (start + count) * per), [count, ...rest]);
    return (await session.run({ [inName]: x }))[outName];
  };
  // logits of every input at batch 64 (also the warm-up)
  let classes = 0, logits = null;
  for (let s = 0; s < n; s += 64) {
    const y = await batch(s, Math.min(64, n - s));
    if (!logits) { classes = y.dims[1]; logits = new Float32Array(n * classes); }
    logits.set(y.data, s * classes);
  }
  if (o.logits) fs.writeFileSync(o.logits, Buffer.from(logits.buffer));
  const now = () => Number(process.hrtime.bigint()) / 1e6;
  const b64 = [], b1 = [];
  const full = Math.floor(n / 64); // whole batches of 64 timed
  for (let r = 0; r < o.runs; r++) {
    if (full) {
      let t = now();
      for (let b = 0; b < full; b++) await batch(b * 64, 64);
      b64.push((now() - t) / (full * 64));
    }
    const m = Math.min(n, o.b1Images);
    let t = now();
    for (let i = 0; i < m; i++) await batch(i, 1);
    b1.push((now() - t) / m);
  }
  const b64ms = full ? median(b64) : null;
  console.log(JSON.stringify({
    ort: ort.env.versions.common, threads: o.threads, runs: o.runs, b1_ms: median(b1),
    b64_ms: b64ms, b64_images_per_s: b64ms ? 1000 / b64ms : null,
  }));
}

main().catch((e) => { console.error(`ort_infer: ${e.message}`); process.exit(1); });
