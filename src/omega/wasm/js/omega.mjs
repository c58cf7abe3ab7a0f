// Loads Pyodide and Omega's browser part from this bundle (`omega sdk wasm --out DIR`),
// in a page or in Node.js:
//
//   import { loadOmega } from "./omega.mjs";
//   const pyodide = await loadOmega();
//   const wasm = pyodide.pyimport("omega.wasm");
//
// Everything comes from beside this file: no network but the page's own origin.
import { loadPyodide } from "./pyodide/pyodide.mjs";

const here = new URL(".", import.meta.url);
const inNode = typeof process === "object" && process.versions?.node !== undefined;

async function bytes(url) {
  if (inNode) {
    const { readFile } = await import("node:fs/promises");
    return new Uint8Array(await readFile(url));
  }
  const answer = await fetch(url);
  if (!answer.ok) throw new Error(`${url}: HTTP ${answer.status}`);
  return new Uint8Array(await answer.arrayBuffer());
}

export async function loadOmega(options = {}) {
  const manifest = JSON.parse(new TextDecoder().decode(await bytes(new URL("manifest.json", here))));
  const pyodide = await loadPyodide(options);
  // Pyodide takes a path under Node.js and a URL in a page.
  const { fileURLToPath } = inNode ? await import("node:url") : { fileURLToPath: null };
  const where = (url) => (inNode ? fileURLToPath(url) : url.href);
  const wheels = manifest.wheels.map((name) => where(new URL(`wheels/${name}`, here)));
  await pyodide.loadPackage(wheels, { messageCallback: () => {} });
  const site = pyodide.runPython("import site; site.getsitepackages()[0]");
  pyodide.unpackArchive(await bytes(new URL(manifest.modules, here)), "zip", { extractDir: site });
  return pyodide;
}
