// node run.mjs BUNDLE IO SCRIPT: runs the Python file SCRIPT in the bundle's Pyodide, with
// the directory IO mounted at /io (its inputs and outputs). A script that defines
// `async def main()` has it awaited after (pyodide.http.pyfetch reaches a server through
// Node's fetch). Prints one JSON line, {"load_ms": …, "run_ms": …}; a Python error exits 1
// with its traceback on stderr.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [bundle, io, script] = process.argv.slice(2);
const start = performance.now();
const { loadOmega } = await import(pathToFileURL(join(bundle, "omega.mjs")).href);
const pyodide = await loadOmega();
const loaded = performance.now();
pyodide.mountNodeFS("/io", io);
try {
  const scope = pyodide.globals.get("dict")();
  scope.set("__name__", "__main__");
  await pyodide.runPythonAsync(await readFile(script, "utf8"), { globals: scope, filename: script });
  const main = scope.get("main");
  if (main !== undefined) await main();
} catch (error) {
  process.stderr.write(`${error.message ?? error}\n`);
  process.exit(1);
}
const done = performance.now();
process.stdout.write(`${JSON.stringify({ load_ms: loaded - start, run_ms: done - loaded })}\n`);
