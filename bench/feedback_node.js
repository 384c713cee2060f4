// Relevance feedback in node (assets/private_search.js + assets/feedback.js, TF.js' tf.min.js on its CPU
// backend): the in-browser head fitted on many queries' marks at once, for python -m bench feedback and
// tests/test_feedback.py.
//   node feedback_node.js <tf.min.js> <assets folder> <features.f32> <n> <dim> < tasks.json
// tasks.json: {"metric": ..., "project": null | {"kernel": base64 float32 (dim x m), "bias": [...]}, "tasks": [{"query": id, "relevant": [...], "notRelevant": [...],
//              "init": null | {"kernel": [...], "bias": b}, "options": {...}}]}
// Prints one JSON line per task: {"scores": base64 float32 (n), "bias", "ms", "loss"}.
const fs = require("fs");
const path = require("path");
const [tfPath, assets, featuresPath, nText, dimText] = process.argv.slice(2);
globalThis.window = globalThis;
const tf = require(tfPath);
require(path.resolve(assets, "private_search.js"));
require(path.resolve(assets, "feedback.js"));

async function main() {
  await tf.setBackend("cpu");
  const n = parseInt(nText, 10), dim = parseInt(dimText, 10);
  const raw = fs.readFileSync(featuresPath);
  const features = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  if (features.length !== n * dim) throw new Error(`features hold ${features.length} values, not ${n} x ${dim}`);
  const job = JSON.parse(fs.readFileSync(0, "utf8"));
  // The hybrid flow: job.project = {kernel: base64 float32 (dim x m, row-major), bias: [...]}, a server head.
  let project = null;
  if (job.project) {
    const k = Buffer.from(job.project.kernel, "base64");
    project = { kernel: new Float32Array(k.buffer.slice(k.byteOffset, k.byteOffset + k.byteLength)),
      bias: Float32Array.from(job.project.bias) };
  }
  for (const task of job.tasks) {
    const query = typeof task.query === "number"
      ? features.slice(task.query * dim, (task.query + 1) * dim) : Float32Array.from(task.query);
    const options = Object.assign({}, task.options || {});
    if (task.init) options.init = task.init;
    const out = job.project
      ? await window.sispFeedback.trainHybrid(tf, features, dim, query, task.relevant, task.notRelevant,
        { kernel: project.kernel, bias: project.bias }, options)
      : await window.sispFeedback.trainHead(tf, features, dim, query, task.relevant, task.notRelevant,
        job.metric, options);
    const bytes = Buffer.from(out.scores.buffer, out.scores.byteOffset, out.scores.byteLength);
    process.stdout.write(JSON.stringify({ scores: bytes.toString("base64"), bias: out.bias, ms: out.ms,
      loss: out.loss, kernel: task.kernel ? Buffer.from(out.kernel.buffer).toString("base64") : undefined }) + "\n");
  }
}
main().catch((error) => { console.error(error && error.stack || error); process.exit(1); });
