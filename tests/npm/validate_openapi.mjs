// validate_openapi.mjs FILE [VERSION]: validates an OpenAPI 3.1 document (or, with VERSION
// "3.0" or "2.0", an OpenAPI 3.0 / Swagger 2.0 one) with an implementation that is not ours
// (@apidevtools/swagger-parser: $ref resolution plus the official JSON Schema of that version,
// and for 2.0 its semantic checks too), then prints one "METHOD path" line per operation on
// stdout, for the caller to try each one against the real server. Exit 0 when valid; otherwise
// the error on stderr and exit 1.
//
// Every operation must have an operationId (connector designers and code generators name the
// action after it) and a description (what a connector shows to the person building a flow).
//
// swagger-parser checks a 3.x document only against the schema (its semantic checks are for
// Swagger 2.0), so the few rules of the 3.1 text that a schema cannot express and that a
// server test depends on are checked here: each {param} of a path is declared as a path
// parameter of every operation and nothing else is, and operationIds are unique.
import SwaggerParser from "@apidevtools/swagger-parser";

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

function fail(msg) {
  process.stderr.write(`validate_openapi: ${msg}\n`);
  process.exit(1);
}

function checkOperations(api) {
  const ops = [];
  const ids = new Set();
  for (const [path, item] of Object.entries(api.paths ?? {})) {
    const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
    for (const method of METHODS) {
      const op = item[method];
      if (op === undefined) continue;
      const where = `${method.toUpperCase()} ${path}`;
      if (typeof op.operationId !== "string" || op.operationId === "")
        fail(`${where}: no operationId`);
      if (ids.has(op.operationId)) fail(`${where}: duplicate operationId "${op.operationId}"`);
      ids.add(op.operationId);
      if (typeof op.description !== "string" || op.description.trim() === "")
        fail(`${where}: no description`);
      // Operation parameters override path-item ones of the same name and location.
      const params = new Map();
      for (const p of [...(item.parameters ?? []), ...(op.parameters ?? [])])
        params.set(`${p.in}:${p.name}`, p);
      const declared = [...params.values()].filter((p) => p.in === "path").map((p) => p.name);
      for (const name of templated) {
        if (!declared.includes(name)) fail(`${where}: path parameter "${name}" is not declared`);
      }
      for (const p of params.values()) {
        if (p.in !== "path") continue;
        if (!templated.includes(p.name)) fail(`${where}: parameter "${p.name}" is not in the path`);
        if (p.required !== true) fail(`${where}: path parameter "${p.name}" must be required`);
      }
      if (Object.keys(op.responses ?? {}).length === 0) fail(`${where}: no responses`);
      ops.push(where);
    }
  }
  return ops;
}

const file = process.argv[2];
const version = process.argv[3] ?? "3.1";
if (file === undefined || !["3.1", "3.0", "2.0"].includes(version))
  fail("usage: node validate_openapi.mjs FILE [3.1|3.0|2.0]");

let api;
try {
  // validate() resolves every $ref, so the checks below see the parameters as used.
  api = await SwaggerParser.validate(file);
} catch (err) {
  fail(err && err.message ? err.message : String(err));
}
if (version === "2.0") {
  if (api.swagger !== "2.0") fail(`"swagger" is ${JSON.stringify(api.swagger)}, not "2.0"`);
} else if (typeof api.openapi !== "string" || !api.openapi.startsWith(`${version}.`)) {
  fail(`"openapi" is ${JSON.stringify(api.openapi)}, not an OpenAPI ${version} version`);
}
const ops = checkOperations(api);
if (ops.length === 0) fail("the document has no operations");
process.stdout.write(ops.join("\n") + "\n");
