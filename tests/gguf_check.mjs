// gguf_check.mjs — a GGUF file's metadata and tensor infos as read by @huggingface/gguf (an
// independent reader), printed as JSON for tests/cli_gguf.sh to compare with deltadct's reader
// and tests/gguf_tool.py:
//   node gguf_check.mjs NODE_MODULES_DIR FILE
//   {"version", "data_start", "metadata": {key: {"type", "elem_type"?, "value"}},
//    "tensors": [{"name", "type_id", "ne", "offset"}]}
// Integers are numbers when a double holds them exactly, else decimal strings.
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [dir, file] = process.argv.slice(2);
if (!dir || !file) {
  console.error("usage: node gguf_check.mjs NODE_MODULES_DIR FILE");
  process.exit(2);
}
const mod = await import(pathToFileURL(join(dir, "@huggingface/gguf/dist/index.mjs")).href);
const VT = ["u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"];
const r = await mod.gguf(file, { allowLocalFile: true, typedMetadata: true });
const big = (v) => (typeof v === "bigint" ? (v >= -(2n ** 53n) && v <= 2n ** 53n ? Number(v) : v.toString()) : v);
const plain = (v) => (Array.isArray(v) ? v.map(plain) : big(v));
const metadata = {};
for (const [k, e] of Object.entries(r.typedMetadata)) {
  if (k === "version" || k === "tensor_count" || k === "kv_count") continue; // the header's, not KVs
  const m = { type: VT[e.type], value: plain(e.value) };
  if (e.subType !== undefined) m.elem_type = VT[e.subType];
  metadata[k] = m;
}
const out = {
  version: big(r.metadata.version),
  data_start: big(r.tensorDataOffset),
  metadata,
  tensors: r.tensorInfos.map((t) => ({ name: t.name, type_id: t.dtype, ne: t.shape.map(big), offset: big(t.offset) })),
};
process.stdout.write(JSON.stringify(out) + "\n");
