// Runs every model that test_onnx wrote through ONNX Runtime (onnxruntime-node, CPU) on the
// input it wrote, and compares with libcvnet's output: |ort - cvnet| <= 1e-4 (1 + |cvnet|).
// Usage: node compare_ort.js DIR   (onnxruntime-node is resolved from NODE_PATH)
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

function floats(path) {
  const b = fs.readFileSync(path);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}

async function main(dir) {
  const lines = fs.readFileSync(`${dir}/models.txt`, 'utf8').split('\n').filter((l) => l.trim());
  let failed = 0;
  for (const line of lines) {
    const f = line.trim().split(/\s+/);
    const name = f[0];
    const inDims = f.slice(2, 2 + Number(f[1])).map(Number);
    const session = await ort.InferenceSession.create(`${dir}/${name}.onnx`);
    const input = new ort.Tensor('float32', floats(`${dir}/${name}.in.f32`), inDims);
    const result = await session.run({ [session.inputNames[0]]: input });
    const got = result[session.outputNames[0]].data;
    const want = floats(`${dir}/${name}.out.f32`);
    let worst = 0, bad = got.length !== want.length;
    for (let i = 0; i < want.length && !bad; i++) {
      const d = Math.abs(got[i] - want[i]);
      worst = Math.max(worst, d);
      if (!(d <= 1e-4 * (1 + Math.abs(want[i])))) bad = true;
    }
    console.log(`onnxruntime ${ort.env.versions.common}: ${name}: batch ${inDims[0]}, ` +
                `${want.length} outputs, max |diff| ${worst.toExponential(2)}` +
                (bad ? '  FAILED (tolerance 1e-4)' : ''));
    if (bad) failed++;
  }
  console.log(`onnxruntime: ${lines.length - failed} of ${lines.length} models match libcvnet`);
  process.exit(failed ? 1 : 0);
}

main(process.argv[2]).catch((e) => { console.error(`onnxruntime: ${e}`); process.exit(1); });
