// Run an exported TF.js layers model in node (tf.min.js, CPU backend), from memory: the check that TF.js itself
// loads precompute.tfjs_export's files and computes the same features as Keras.
//   node tfjs_predict.js <tf.min.js> <variant folder> <inputs.f32> <n> <size> <outputs.f32>
// inputs: n*size*size*3 little-endian float32, already transformed as export.json says. Writes every output of
// every image (image-major, outputs in model order) as float32, prints {"dims": [...], "load_ms", "predict_ms"}.
const fs = require('fs');
const path = require('path');
const [tfPath, folder, inputsPath, nText, sizeText, outPath] = process.argv.slice(2);
const tf = require(tfPath);

async function main() {
  await tf.setBackend('cpu');
  const t0 = Date.now();
  const modelJson = JSON.parse(fs.readFileSync(path.join(folder, 'model.json'), 'utf8'));
  const specs = [];
  const buffers = [];
  for (const group of modelJson.weightsManifest) {
    for (const p of group.paths) buffers.push(fs.readFileSync(path.join(folder, p)));
    specs.push(...group.weights);
  }
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const handler = tf.io.fromMemory({modelTopology: modelJson.modelTopology, weightSpecs: specs, weightData});
  const model = await tf.loadLayersModel(handler);
  const t1 = Date.now();
  const n = parseInt(nText, 10), size = parseInt(sizeText, 10);
  const raw = fs.readFileSync(inputsPath);
  const x = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const chunks = [];
  let dims = null;
  for (let i = 0; i < n; i++) {
    const input = tf.tensor4d(x.subarray(i * size * size * 3, (i + 1) * size * size * 3), [1, size, size, 3]);
    let outputs = model.predict(input);
    if (!Array.isArray(outputs)) outputs = [outputs];
    dims = outputs.map((t) => t.shape[t.shape.length - 1]);
    for (const t of outputs) {
      const values = await t.data();  // may be a view on a larger buffer (an identity op returns its input's)
      chunks.push(Buffer.from(values.buffer, values.byteOffset, values.byteLength));
      t.dispose();
    }
    input.dispose();
  }
  fs.writeFileSync(outPath, Buffer.concat(chunks));
  console.log(JSON.stringify({dims, load_ms: t1 - t0, predict_ms: Date.now() - t1}));
}
main().catch((err) => { console.error(err && err.stack || String(err)); process.exit(1); });
