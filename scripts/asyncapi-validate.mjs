// Validates AsyncAPI documents with the official parser (@asyncapi/parser, installed by
// `scripts/services.sh tools` into .services/npm):
//   NODE_PATH=.services/npm/node_modules node scripts/asyncapi-validate.mjs FILE...
// Prints every diagnostic; exits 1 when one is an error (severity 0) or a document is unusable.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

// NODE_PATH is not read by ES module imports, only by require.
const require = createRequire(import.meta.url); // honours NODE_PATH
const { Parser } = require("@asyncapi/parser");

const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(readFileSync(file, "utf8"), { source: file });
  for (const d of diagnostics) {
    console.log(`${file}: severity ${d.severity} ${d.code} at ${d.path.join(".")}: ${d.message}`);
  }
  const errors = diagnostics.filter((d) => d.severity === 0);
  if (!document || errors.length) failed = true;
  else console.log(`${file}: valid AsyncAPI ${document.version()}`);
}
process.exit(failed ? 1 : 0);
