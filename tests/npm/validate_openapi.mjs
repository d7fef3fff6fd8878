// validate_openapi.mjs FILE: validates an OpenAPI 3.1 document with an implementation that is
// not ours (@apidevtools/swagger-parser: $ref resolution plus the official 3.1 JSON Schema),
// then prints one "METHOD path" line per operation on stdout, for the caller to try each one
// against the real server. Exit 0 when valid; otherwise the error on stderr and exit 1.
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
      if (op.operationId !== undefined) {
        if (ids.has(op.operationId)) fail(`${where}: duplicate operationId "${op.operationId}"`);
        ids.add(op.operationId);
      }
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
if (file === undefined) fail("usage: node validate_openapi.mjs FILE");

let api;
try {
  // validate() resolves every $ref, so the checks below see the parameters as used.
  api = await SwaggerParser.validate(file);
} catch (err) {
  fail(err && err.message ? err.message : String(err));
}
if (typeof api.openapi !== "string" || !api.openapi.startsWith("3.1."))
  fail(`"openapi" is ${JSON.stringify(api.openapi)}, not an OpenAPI 3.1 version`);
const ops = checkOperations(api);
if (ops.length === 0) fail("the document has no operations");
process.stdout.write(ops.join("\n") + "\n");
