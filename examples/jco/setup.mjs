// Setup module for `jco serve --jco-import examples/jco/setup.mjs`: what
// `wasmtime serve --dir ./data::/data --env NAME=VALUE` gives, on Node.js.
//
// - The folder `$PORTICO_DATA` (default `./data`, created if missing) is
//   preopened at `/data`, where platform-wasi keeps its storage.
// - The component sees only the environment variables that are Portico
//   variables (those declared in `spin.toml`, or in the manifest
//   `$PORTICO_MANIFEST` names, in upper case: `JWT_SECRET`,
//   `BOOTSTRAP_ADMIN`, ...), not the rest of the shell's environment, plus
//   `PORTICO_LOCKED_APPEND=1`: this shim's append-via-stream is not an
//   atomic append, so platform-wasi locks a counter segment while it appends
//   (see components/platform-wasi/src/counters.rs).
import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { resolve } from "node:path";
import process from "node:process";
import { pathToFileURL } from "node:url";

// jco writes its runner (process.argv[1]) into a folder whose node_modules
// links the preview2-shim the transpiled component imports. The setup must
// configure that very module instance: resolving the shim from here could
// find another copy (npm may install two versions side by side).
const runner = createRequire(process.argv[1]);
const shim = (name) =>
  import(pathToFileURL(runner.resolve(`@bytecodealliance/preview2-shim/${name}`)).href);
const { _setPreopens } = await shim("filesystem");
const { _setEnv } = await shim("cli");

const data = resolve(process.env.PORTICO_DATA || "data");
mkdirSync(data, { recursive: true });
_setPreopens({ "/data": data });

// The variable names declared in spin.toml's [variables] table (the app's,
// or another manifest's named by PORTICO_MANIFEST).
const manifest = readFileSync(
  process.env.PORTICO_MANIFEST || new URL("../../spin.toml", import.meta.url),
  "utf8",
);
const table = manifest.split(/^\[variables\]$/m)[1]?.split(/^\[/m)[0] ?? "";
const names = [...table.matchAll(/^([a-z][a-z0-9_]*)\s*=/gm)].map((m) => m[1].toUpperCase());
_setEnv({
  ...Object.fromEntries(
    names.filter((name) => process.env[name] !== undefined).map((name) => [name, process.env[name]]),
  ),
  PORTICO_LOCKED_APPEND: "1",
});
console.error(
  `portico on jco: /data is ${data}; variables passed: ${names.filter((n) => n in process.env).join(", ") || "none"} (and PORTICO_LOCKED_APPEND=1)`,
);
