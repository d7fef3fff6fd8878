#!/usr/bin/env python3
"""openapi_convert.py: derives the OpenAPI 3.0 and Swagger 2.0 contracts from docs/openapi.json.

    python3 tools/openapi_convert.py 3.0 IN OUT
    python3 tools/openapi_convert.py 2.0 IN OUT

docs/openapi.json (OpenAPI 3.1) is the one source. Logic Apps and Power Automate custom
connectors import Swagger 2.0 only; Semantic Kernel's OpenAPI importer and most code generators
read OpenAPI 3.0. The build runs this script (CMakeLists.txt) and compiles both outputs into
the binary, served as /openapi-3.0.json and /swagger.json; the copies committed in docs/ are
checked equal to what the build makes (tests/it_openapi.c), so none of the three can drift.

Only the standard library: the build needs nothing but python3. The output is deterministic
(key order kept, two-space indent, a final newline) so a diff of docs/ shows what changed.

What each target cannot say, and what is written instead:
- 3.0: `type: [T, "null"]` becomes `type: T, nullable: true`; `oneOf: [X, {type: null}]`
  becomes `allOf: [X], nullable: true`; `const: v` becomes `enum: [v]`; schema `examples: [v,
  ...]` becomes `example: v`; `propertyNames` (no 3.0 keyword) is dropped and its rule appended
  to the description; siblings of a `$ref` (3.0 ignores them) are moved beside an `allOf`
  wrapper in schemas and dropped elsewhere; `info.summary` and `license.identifier` are
  dropped (3.1 only).
- 2.0 additionally: `components/*` become `definitions`, `parameters` and `responses`; shared
  headers are inlined; a non-body parameter and a header carry their schema's keywords directly;
  a request body becomes one `in: body` parameter; each operation lists `consumes` and
  `produces` from its media types and each response keeps the schema of its JSON form (else its
  first); nullable is `x-nullable` (the extension AutoRest and the connector designers read);
  `anyOf`/`oneOf` of several objects (2.0 has neither) becomes a plain object whose description
  names the alternatives; the bearer scheme is an `apiKey` in the `Authorization` header (what
  2.0 has for a bearer token: the caller sends `Bearer <token>` as the value).
"""
import copy
import json
import sys

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# JSON Schema keywords a Swagger 2.0 non-body parameter or header may carry beside `type`.
SIMPLE_KEYWORDS = ("format", "items", "collectionFormat", "default", "maximum", "exclusiveMaximum",
                   "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems",
                   "minItems", "uniqueItems", "enum", "multipleOf")
# Keywords of a 3.1 schema whose value is one schema / a list of schemas / a map of schemas.
SUB_ONE = ("items", "not", "additionalProperties")
SUB_LIST = ("allOf", "anyOf", "oneOf")
SUB_MAP = ("properties",)


def is_null_schema(s):
    return isinstance(s, dict) and s.get("type") == "null" and len(s) == 1


def append_description(s, text):
    s["description"] = (s["description"] + " " + text) if s.get("description") else text


def schema_30(s):
    """One 3.1 schema as 3.0 (a new object)."""
    if not isinstance(s, dict):
        return s
    s = dict(s)
    if "$ref" in s and len(s) > 1:
        ref = s.pop("$ref")
        s = {"allOf": [{"$ref": ref}], **s}
    t = s.get("type")
    if isinstance(t, list):
        rest = [x for x in t if x != "null"]
        nullable = len(rest) < len(t)
        if len(rest) == 1:
            s["type"] = rest[0]
        else:
            # several types: 3.0 has no union of types; leave the value unconstrained
            del s["type"]
            append_description(s, "One of the JSON types: %s." % ", ".join(rest))
        if nullable:
            s["nullable"] = True
    for key in ("oneOf", "anyOf"):
        alts = s.get(key)
        if isinstance(alts, list) and any(is_null_schema(a) for a in alts):
            rest = [a for a in alts if not is_null_schema(a)]
            del s[key]
            if len(rest) == 1:
                s["allOf"] = rest
            else:
                s[key] = rest
            s["nullable"] = True
    if "const" in s:
        s["enum"] = [s.pop("const")]
    if "examples" in s and isinstance(s["examples"], list):
        ex = s.pop("examples")
        if ex:
            s["example"] = ex[0]
    if "propertyNames" in s:
        pn = s.pop("propertyNames")
        append_description(s, "Each property name: %s." % json.dumps(pn, sort_keys=True))
    for k in SUB_ONE:
        if isinstance(s.get(k), dict):
            s[k] = schema_30(s[k])
    for k in SUB_LIST:
        if k in s:
            s[k] = [schema_30(x) for x in s[k]]
    for k in SUB_MAP:
        if k in s:
            s[k] = {n: schema_30(v) for n, v in s[k].items()}
    return s


def strip_ref_siblings(o):
    """A non-schema Reference Object in 3.0 is exactly {"$ref": ...}."""
    if isinstance(o, dict) and "$ref" in o:
        return {"$ref": o["$ref"]}
    return o


def media_30(m):
    m = dict(m)
    if "schema" in m:
        m["schema"] = schema_30(m["schema"])
    return m


def header_30(h):
    h = strip_ref_siblings(h)
    if "$ref" in h:
        return h
    h = dict(h)
    if "schema" in h:
        h["schema"] = schema_30(h["schema"])
    return h


def response_30(r):
    r = strip_ref_siblings(r)
    if "$ref" in r:
        return r
    r = dict(r)
    if "headers" in r:
        r["headers"] = {n: header_30(h) for n, h in r["headers"].items()}
    if "content" in r:
        r["content"] = {t: media_30(m) for t, m in r["content"].items()}
    return r


def parameter_30(p):
    p = strip_ref_siblings(p)
    if "$ref" in p:
        return p
    p = dict(p)
    if "schema" in p:
        p["schema"] = schema_30(p["schema"])
    return p


def to_30(doc):
    out = {}
    for k, v in doc.items():
        if k == "openapi":
            out[k] = "3.0.3"
        elif k == "info":
            info = {ik: iv for ik, iv in v.items() if ik != "summary"}
            if "license" in info:
                info["license"] = {lk: lv for lk, lv in info["license"].items()
                                   if lk != "identifier"}
            out[k] = info
        elif k in ("webhooks", "jsonSchemaDialect"):
            continue
        elif k == "paths":
            paths = {}
            for path, item in v.items():
                ni = {}
                for ik, iv in item.items():
                    if ik == "parameters":
                        ni[ik] = [parameter_30(p) for p in iv]
                    elif ik in METHODS:
                        op = dict(iv)
                        if "parameters" in op:
                            op["parameters"] = [parameter_30(p) for p in op["parameters"]]
                        if "requestBody" in op:
                            rb = strip_ref_siblings(op["requestBody"])
                            if "$ref" not in rb:
                                rb = dict(rb)
                                rb["content"] = {t: media_30(m) for t, m in rb["content"].items()}
                            op["requestBody"] = rb
                        op["responses"] = {c: response_30(r) for c, r in op["responses"].items()}
                        ni[ik] = op
                    else:
                        ni[ik] = iv
                paths[path] = ni
            out[k] = paths
        elif k == "components":
            comp = {}
            for ck, cv in v.items():
                if ck == "schemas":
                    comp[ck] = {n: schema_30(s) for n, s in cv.items()}
                elif ck == "responses":
                    comp[ck] = {n: response_30(r) for n, r in cv.items()}
                elif ck == "parameters":
                    comp[ck] = {n: parameter_30(p) for n, p in cv.items()}
                elif ck == "headers":
                    comp[ck] = {n: header_30(h) for n, h in cv.items()}
                elif ck == "pathItems":
                    continue
                else:
                    comp[ck] = cv
            out[k] = comp
        else:
            out[k] = v
    return out


# ---- Swagger 2.0, from the 3.0 form (nullable and const already resolved) ----

def ref_20(ref):
    for a, b in (("#/components/schemas/", "#/definitions/"),
                 ("#/components/parameters/", "#/parameters/"),
                 ("#/components/responses/", "#/responses/")):
        if ref.startswith(a):
            return b + ref[len(a):]
    raise ValueError("no Swagger 2.0 form for $ref %s" % ref)


def resolve(doc, ref):
    node = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def schema_20(s):
    if not isinstance(s, dict):
        return s
    s = dict(s)
    if "$ref" in s:
        s["$ref"] = ref_20(s["$ref"])
    if s.pop("nullable", False):
        s["x-nullable"] = True
    for key in ("anyOf", "oneOf"):
        if key in s:
            alts = s.pop(key)
            names = [a["$ref"].rsplit("/", 1)[1] if "$ref" in a else "an inline schema"
                     for a in alts]
            s.setdefault("type", "object")
            append_description(s, "One of: %s." % ", ".join(names))
    for k in SUB_ONE:
        if isinstance(s.get(k), dict):
            s[k] = schema_20(s[k])
    if "not" in s:
        del s["not"]
    for k in SUB_LIST:
        if k in s:
            s[k] = [schema_20(x) for x in s[k]]
    for k in SUB_MAP:
        if k in s:
            s[k] = {n: schema_20(v) for n, v in s[k].items()}
    return s


def flatten_simple(doc30, obj):
    """A 3.0 header or non-body parameter as 2.0: its schema's keywords moved onto it."""
    out = {k: v for k, v in obj.items() if k not in ("schema", "example", "examples",
                                                     "style", "explode", "deprecated",
                                                     "allowEmptyValue")}
    schema = obj.get("schema", {"type": "string"})
    while "$ref" in schema:
        schema = resolve(doc30, schema["$ref"])
    out["type"] = schema.get("type", "string")
    for k in SIMPLE_KEYWORDS:
        if k in schema:
            out[k] = schema[k]
    if "example" in schema:
        out["x-example"] = schema["example"]
    return out


def parameter_20(doc30, p):
    if "$ref" in p:
        return {"$ref": ref_20(p["$ref"])}
    return flatten_simple(doc30, p)


def header_20(doc30, h):
    if "$ref" in h:
        h = resolve(doc30, h["$ref"])
    h = flatten_simple(doc30, h)
    h.pop("required", None)
    h.pop("name", None)
    h.pop("in", None)
    return h


def pick_media(content):
    """The media type whose schema a 2.0 response keeps: JSON when offered, else the first."""
    if "application/json" in content:
        return "application/json"
    return next(iter(content))


def response_20(doc30, r, produces):
    if "$ref" in r:
        target = resolve(doc30, r["$ref"])
        produces.extend(t for t in target.get("content", {}) if t not in produces)
        return {"$ref": ref_20(r["$ref"])}
    out = {"description": r.get("description", "")}
    content = r.get("content") or {}
    if content:
        for t in content:
            if t not in produces:
                produces.append(t)
        m = content[pick_media(content)]
        if "schema" in m:
            out["schema"] = schema_20(m["schema"])
    if "headers" in r:
        out["headers"] = {n: header_20(doc30, h) for n, h in r["headers"].items()}
    return out


def to_20(doc31):
    doc30 = to_30(doc31)
    out = {"swagger": "2.0", "info": copy.deepcopy(doc30["info"])}
    url = (doc30.get("servers") or [{"url": "/"}])[0]["url"]
    # A relative server URL: the host is the one the document was fetched from.
    out["basePath"] = url if url.startswith("/") else "/"
    out["consumes"] = ["application/json"]
    out["produces"] = ["application/json"]
    if "security" in doc30:
        out["security"] = doc30["security"]
    if "tags" in doc30:
        out["tags"] = doc30["tags"]
    paths = {}
    for path, item in doc30["paths"].items():
        ni = {}
        for ik, iv in item.items():
            if ik == "parameters":
                ni[ik] = [parameter_20(doc30, p) for p in iv]
            elif ik in METHODS:
                op = {}
                produces = []
                consumes = []
                for ok, ov in iv.items():
                    if ok == "parameters":
                        op[ok] = [parameter_20(doc30, p) for p in ov]
                    elif ok == "requestBody":
                        rb = ov
                        if "$ref" in rb:
                            rb = resolve(doc30, rb["$ref"])
                        consumes = list(rb["content"])
                        m = rb["content"][pick_media(rb["content"])]
                        body = {"name": "body", "in": "body",
                                "required": bool(rb.get("required", False)),
                                "schema": schema_20(m.get("schema", {"type": "object"}))}
                        if rb.get("description"):
                            body["description"] = rb["description"]
                        op.setdefault("parameters", []).append(body)
                    elif ok == "responses":
                        op[ok] = {c: response_20(doc30, r, produces) for c, r in ov.items()}
                    elif ok in ("callbacks", "servers"):
                        continue
                    else:
                        op[ok] = ov
                if "parameters" in op:
                    # the body parameter after the others, as the 3.x document reads
                    op["parameters"] = ([p for p in op["parameters"] if p.get("in") != "body"] +
                                        [p for p in op["parameters"] if p.get("in") == "body"])
                if consumes and consumes != out["consumes"]:
                    op["consumes"] = consumes
                if produces and produces != out["produces"]:
                    op["produces"] = produces
                ni[ik] = op
            else:
                ni[ik] = iv
        paths[path] = ni
    out["paths"] = paths
    comp = doc30.get("components", {})
    out["definitions"] = {n: schema_20(s) for n, s in comp.get("schemas", {}).items()}
    out["parameters"] = {n: parameter_20(doc30, p) for n, p in comp.get("parameters", {}).items()}
    out["responses"] = {n: response_20(doc30, r, []) for n, r in comp.get("responses", {}).items()}
    sd = {}
    for n, sch in comp.get("securitySchemes", {}).items():
        if sch.get("type") == "http" and sch.get("scheme") == "bearer":
            sd[n] = {"type": "apiKey", "in": "header", "name": "Authorization",
                     "description": "Send `Bearer <token>` as the value. " +
                                    sch.get("description", "")}
        elif sch.get("type") == "apiKey" and sch.get("in") in ("query", "header"):
            sd[n] = {k: sch[k] for k in ("type", "in", "name", "description") if k in sch}
        else:
            raise ValueError("no Swagger 2.0 form for security scheme %s" % n)
    out["securityDefinitions"] = sd
    return out


def main(argv):
    if len(argv) != 4 or argv[1] not in ("3.0", "2.0"):
        sys.stderr.write("usage: openapi_convert.py 3.0|2.0 IN OUT\n")
        return 2
    with open(argv[2], encoding="utf-8") as f:
        doc = json.load(f)
    if not str(doc.get("openapi", "")).startswith("3.1."):
        sys.stderr.write("openapi_convert.py: %s is not an OpenAPI 3.1 document\n" % argv[2])
        return 1
    res = to_30(doc) if argv[1] == "3.0" else to_20(doc)
    text = json.dumps(res, indent=2, ensure_ascii=False) + "\n"
    with open(argv[3], "w", encoding="utf-8") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
