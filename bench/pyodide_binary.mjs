// The binary binding inside Pyodide, under Node (no browser): boots Pyodide from node_modules,
// writes this checkout's pyrt into its filesystem, installs msgpack's Pyodide wheel (vendored by
// scripts/vendor_wheels.py) and runs bench/pyodide_binary.py in it.
//   node bench/pyodide_binary.mjs [path/to/msgpack-...-pyemscripten_..._wasm32.whl]
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..");
const { loadPyodide } = await import(join(repo, "node_modules/pyodide/pyodide.mjs"));
const wheelPath =
  process.argv[2] || join(repo, ".cache/pyodide/msgpack-1.2.4-cp314-cp314-pyemscripten_2026_0_wasm32.whl");

function pythonFiles(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (name !== "__pycache__") pythonFiles(path, out);
    } else if (name.endsWith(".py")) out.push(path);
  }
  return out;
}

const py = await loadPyodide({ indexURL: join(repo, "node_modules/pyodide/") });
for (const file of pythonFiles(join(repo, "pyrt"))) {
  const target = "/src/" + relative(repo, file);
  py.FS.mkdirTree(dirname(target));
  py.FS.writeFile(target, readFileSync(file));
}
py.unpackArchive(new Uint8Array(readFileSync(wheelPath)), "wheel");
await py.runPythonAsync(readFileSync(join(repo, "bench/pyodide_binary.py"), "utf8"));
