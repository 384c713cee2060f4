// A private query's browser half, in node: assets/private_search.js resizes decoded RGB pixels like PIL and maps
// them by export.json, then TensorFlow.js runs the exported model (precompute.tfjs_export).
//   node tfjs_private_query.js <tf.min.js> <private_search.js> <tfjs folder> <variant> <rgb.u8> <w> <h> <out.f32>
// Writes the features of every output (model order) as float32; prints {"dims": [...]}.
const fs = require('fs');
const path = require('path');
const [tfPath, searchPath, folder, variant, rgbPath, wText, hText, outPath] = process.argv.slice(2);
globalThis.self = globalThis;  // private_search.js defines self.sispPrivate outside a window
const tf = require(tfPath);
require(searchPath);

async function main() {
  await tf.setBackend('cpu');
  const spec = JSON.parse(fs.readFileSync(path.join(folder, 'export.json'), 'utf8'));
  const modelJson = JSON.parse(fs.readFileSync(path.join(folder, variant, 'model.json'), 'utf8'));
  const specs = [], buffers = [];
  for (const group of modelJson.weightsManifest) {
    for (const p of group.paths) buffers.push(fs.readFileSync(path.join(folder, variant, p)));
    specs.push(...group.weights);
  }
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const model = await tf.loadLayersModel(
    tf.io.fromMemory({modelTopology: modelJson.modelTopology, weightSpecs: specs, weightData}));
  const raw = fs.readFileSync(rgbPath);
  const rgb = {width: parseInt(wText, 10), height: parseInt(hText, 10), data: new Uint8Array(raw)};
  const size = spec.input_size;
  const input = self.sispPrivate.preprocess(self.sispPrivate.resizeLikePIL(rgb, size), spec);
  let outputs = model.predict(tf.tensor4d(input, [1, size, size, 3]));
  if (!Array.isArray(outputs)) outputs = [outputs];
  const chunks = [];
  for (const t of outputs) {
    const values = await t.data();
    chunks.push(Buffer.from(values.buffer, values.byteOffset, values.byteLength));
  }
  fs.writeFileSync(outPath, Buffer.concat(chunks));
  console.log(JSON.stringify({dims: outputs.map((t) => t.shape[t.shape.length - 1])}));
}
main().catch((err) => { console.error(err && err.stack || String(err)); process.exit(1); });
