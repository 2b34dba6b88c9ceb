"""GET /openapi.json (issue 5): an OpenAPI 3 document of every endpoint, request and answer field,
the same as docs/openapi.json, checked against real answers.

`check` below validates a value against the subset of JSON Schema (OpenAPI 3.0 flavour) that the
document uses. It refuses keywords it does not know, so it cannot silently skip part of a schema;
tests of its own (without a server) show it rejects what it must. Each real answer is validated
against the schema the document gives for its path, method, status code and media type: every
field of the answer must be described (the object schemas say additionalProperties: false) and
every required field present. The requests sent are validated against the Request schema too.
"""

import base64
import binascii
import copy
import json

import pytest

from conftest import ROOT, post_json, request, show

DOC_PATH = ROOT / "docs" / "openapi.json"

ANNOTATIONS = {"description", "default", "example", "title", "format", "readOnly", "writeOnly",
               "deprecated"}
ASSERTIONS = {"$ref", "type", "nullable", "enum", "required", "properties", "additionalProperties",
              "items", "allOf", "oneOf", "anyOf", "minLength", "maxLength", "minimum", "maximum",
              "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems"}
KNOWN = ANNOTATIONS | ASSERTIONS


class UnknownKeyword(Exception):
    pass


def resolve(doc, ref):
    assert ref.startswith("#/"), f"only local references are supported: {ref}"
    node = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"unresolvable $ref {ref}")
        node = node[part]
    return node


def _type_ok(t, v):
    return {
        "string": lambda: isinstance(v, str),
        "integer": lambda: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda: isinstance(v, bool),
        "object": lambda: isinstance(v, dict),
        "array": lambda: isinstance(v, list),
    }[t]()


def _same(a, b):
    return type(a) is type(b) and a == b


def check(doc, schema, value, where="$"):
    """Returns the list of violations (empty when value matches schema)."""
    errors = []
    _check(doc, schema, value, where, errors)
    return errors


def _check(doc, schema, v, where, errors):
    if not isinstance(schema, dict):
        raise UnknownKeyword(f"{where}: schema is not an object: {schema!r}")
    unknown = set(schema) - KNOWN
    if unknown:
        raise UnknownKeyword(f"{where}: keywords the validator does not know: {sorted(unknown)}")
    if v is None and schema.get("nullable") is True:
        return
    if "$ref" in schema:
        _check(doc, resolve(doc, schema["$ref"]), v, where, errors)
    t = schema.get("type")
    if t is not None:
        if t not in ("string", "integer", "number", "boolean", "object", "array"):
            raise UnknownKeyword(f"{where}: unknown type {t!r}")
        if not _type_ok(t, v):
            errors.append(f"{where}: {v!r:.80} is not of type {t}")
            return
    elif v is None and "nullable" in schema and schema["nullable"] is not True:
        errors.append(f"{where}: null is not allowed")
    if "enum" in schema and not any(_same(v, e) for e in schema["enum"]):
        errors.append(f"{where}: {v!r:.80} is not one of {schema['enum']}")
    if isinstance(v, str):
        if "minLength" in schema and len(v) < schema["minLength"]:
            errors.append(f"{where}: shorter than {schema['minLength']}")
        if "maxLength" in schema and len(v) > schema["maxLength"]:
            errors.append(f"{where}: longer than {schema['maxLength']}")
        if schema.get("format") == "byte":
            try:
                base64.b64decode(v, validate=True)
            except (binascii.Error, ValueError):
                errors.append(f"{where}: not base64")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        if "minimum" in schema and v < schema["minimum"]:
            errors.append(f"{where}: below {schema['minimum']}")
        if "maximum" in schema and v > schema["maximum"]:
            errors.append(f"{where}: above {schema['maximum']}")
        for key, below in (("exclusiveMinimum", True), ("exclusiveMaximum", False)):
            if key not in schema:
                continue
            x = schema[key]
            if isinstance(x, bool):   # OpenAPI 3.0: a flag on minimum/maximum
                bound = schema.get("minimum" if below else "maximum")
                if x and bound is not None and v == bound:
                    errors.append(f"{where}: equals the exclusive bound {bound}")
            elif (below and v <= x) or (not below and v >= x):   # 3.1 / JSON Schema 2019+: a number
                errors.append(f"{where}: not beyond the exclusive bound {x}")
    if isinstance(v, list):
        if "minItems" in schema and len(v) < schema["minItems"]:
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(v) > schema["maxItems"]:
            errors.append(f"{where}: more than {schema['maxItems']} items")
        if "items" in schema:
            for i, item in enumerate(v):
                _check(doc, schema["items"], item, f"{where}[{i}]", errors)
    if isinstance(v, dict):
        for name in schema.get("required", []):
            if name not in v:
                errors.append(f"{where}: required field {name!r} is missing")
        props = schema.get("properties", {})
        for name, item in v.items():
            if name in props:
                _check(doc, props[name], item, f"{where}.{name}", errors)
            else:
                extra = schema.get("additionalProperties", True)
                if extra is False:
                    errors.append(f"{where}: field {name!r} is not described")
                elif isinstance(extra, dict):
                    _check(doc, extra, item, f"{where}.{name}", errors)
    for sub in schema.get("allOf", []):
        _check(doc, sub, v, where, errors)
    if "oneOf" in schema:
        passing = sum(1 for sub in schema["oneOf"] if not check(doc, sub, v, where))
        if passing != 1:
            errors.append(f"{where}: matches {passing} of the oneOf alternatives, not exactly one")
    if "anyOf" in schema:
        if not any(not check(doc, sub, v, where) for sub in schema["anyOf"]):
            errors.append(f"{where}: matches none of the anyOf alternatives")


# --- the document --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def repo_doc():
    try:
        return json.loads(DOC_PATH.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        pytest.fail(f"{DOC_PATH}: {e}", pytrace=False)


@pytest.fixture(scope="module")
def docs(served, repo_doc):
    return (served, repo_doc)


@pytest.fixture(scope="module")
def served(server):
    r = request(server, "GET", "/openapi.json", timeout=30)
    assert r.status == 200, show(r)
    assert r.headers.get("content-type", "").split(";")[0].strip() == "application/json", show(r)
    assert isinstance(r.json, dict), show(r)
    return r.json


def test_served_document_is_the_one_in_docs(served, repo_doc):
    assert served == repo_doc, "GET /openapi.json differs from docs/openapi.json"


def test_it_is_an_openapi_3_document_of_every_endpoint(served):
    assert isinstance(served.get("openapi"), str) and served["openapi"].startswith("3."), served.get("openapi")
    assert served.get("info", {}).get("title") and served["info"].get("version"), show(served.get("info"))
    paths = served.get("paths", {})
    for path, method in (("/api/execute", "post"), ("/health", "get"), ("/metrics", "get"),
                         ("/openapi.json", "get")):
        assert method in paths.get(path, {}), f"{method.upper()} {path} is not documented"
        op = paths[path][method]
        assert op.get("responses", {}).get("200"), f"{method.upper()} {path} has no 200 response"
        for code, resp in op["responses"].items():
            assert isinstance(resp.get("description"), str), f"{path} {code}: a response needs a description"
    body = paths["/api/execute"]["post"].get("requestBody", {})
    assert "application/json" in body.get("content", {}), "the request body of /api/execute is not described"


def _walk(node, where="#"):
    if isinstance(node, dict):
        yield where, node
        for k, v in node.items():
            yield from _walk(v, f"{where}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{where}/{i}")


def _schemas(doc):
    """Every schema object in the document, with where it is."""
    out = []

    def visit(schema, where):
        out.append((where, schema))
        for key in ("properties",):
            for name, sub in schema.get(key, {}).items():
                visit(sub, f"{where}/{key}/{name}")
        for key in ("allOf", "oneOf", "anyOf"):
            for i, sub in enumerate(schema.get(key, [])):
                visit(sub, f"{where}/{key}/{i}")
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                visit(schema[key], f"{where}/{key}")

    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        visit(schema, f"#/components/schemas/{name}")
    for where, node in _walk(doc.get("paths", {}), "#/paths"):
        if "schema" in node and isinstance(node["schema"], dict):
            visit(node["schema"], where + "/schema")
    return out


def test_every_ref_resolves(served):
    refs = [(where, node["$ref"]) for where, node in _walk(served) if isinstance(node.get("$ref"), str)]
    assert refs, "no $ref at all"
    for where, ref in refs:
        try:
            resolve(served, ref)
        except KeyError as e:
            pytest.fail(f"{where}: {e}")


def test_the_validator_knows_every_keyword_the_document_uses(served):
    for where, schema in _schemas(served):
        unknown = set(schema) - KNOWN
        assert not unknown, f"{where}: {sorted(unknown)}"


def test_schema_keywords_fit_the_declared_openapi_version(served):
    """OpenAPI 3.0 schemas are JSON Schema draft-05-ish: exclusiveMinimum/exclusiveMaximum are
    booleans modifying minimum/maximum, `type` is one name, there is no `const`/`examples`."""
    if not served["openapi"].startswith("3.0"):
        pytest.fail(f"this test knows the rules of 3.0 only; the document says {served['openapi']}")
    wrong = []
    for where, schema in _schemas(served):
        for key, base in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if key in schema:
                if not isinstance(schema[key], bool):
                    wrong.append(f"{where}: {key} is {schema[key]!r}; in OpenAPI 3.0 it is a boolean "
                                 f"next to {base}")
                elif base not in schema:
                    wrong.append(f"{where}: {key} without {base}")
        if "type" in schema and not isinstance(schema["type"], str):
            wrong.append(f"{where}: type {schema['type']!r} is not one name")
        for key in ("const", "examples", "$defs", "prefixItems"):
            if key in schema:
                wrong.append(f"{where}: {key} is not OpenAPI 3.0")
    assert not wrong, "\n".join(wrong)


def test_object_schemas_are_closed(served):
    """additionalProperties: false on every object schema with properties (except where a
    schema is only the object of an allOf), so that a field nobody described cannot pass."""
    open_ = [where for where, s in _schemas(served)
             if s.get("type") == "object" and "properties" in s and s.get("additionalProperties") is not False]
    assert not open_, f"object schemas that accept undescribed fields: {open_}"


# --- the validator itself ------------------------------------------------------------------------

MINI = {
    "components": {"schemas": {
        "Thing": {"type": "object", "required": ["a"], "additionalProperties": False,
                  "properties": {"a": {"type": "integer"}, "b": {"type": "string", "nullable": True},
                                 "c": {"type": "string", "enum": ["x", "y"]},
                                 "d": {"oneOf": [{"type": "boolean"}, {"type": "array", "items": {"type": "string"}}]},
                                 "e": {"allOf": [{"$ref": "#/components/schemas/Inner"}], "nullable": True},
                                 "f": {"type": "number", "exclusiveMinimum": 0}}},
        "Inner": {"type": "object", "required": ["z"], "additionalProperties": False,
                  "properties": {"z": {"type": "boolean"}}},
    }}
}
THING = {"$ref": "#/components/schemas/Thing"}


@pytest.mark.parametrize("value", [
    {"a": 1}, {"a": 1, "b": None, "c": "y", "d": True, "e": None, "f": 0.5},
    {"a": 2, "b": "s", "d": ["p"], "e": {"z": False}},
])
def test_validator_accepts(value):
    assert check(MINI, THING, value) == []


@pytest.mark.parametrize("value", [
    {},                               # required a missing
    {"a": 1, "zz": 0},                # undescribed field
    {"a": "1"},                       # wrong type
    {"a": True},                      # a boolean is not an integer
    {"a": 1.5},                       # nor is a float
    {"a": None},                      # not nullable
    {"a": 1, "c": "z"},               # not in the enum
    {"a": 1, "d": "s"},               # no oneOf alternative
    {"a": 1, "d": [1]},               # wrong item type
    {"a": 1, "e": {}},                # the referenced schema's required field
    {"a": 1, "e": {"z": True, "q": 1}},
    {"a": 1, "f": 0},                 # exclusive minimum
    [],                               # not an object
])
def test_validator_rejects(value):
    assert check(MINI, THING, value), f"accepted {value!r}"


def test_validator_refuses_unknown_keywords():
    with pytest.raises(UnknownKeyword):
        check(MINI, {"type": "string", "pattern": "^a"}, "a")


# --- real answers --------------------------------------------------------------------------------

def documented_schema(doc, path, method, status, ctype):
    ops = doc["paths"].get(path, {})
    op = ops.get(method.lower())
    if op is None and status == 405:
        # A method the path does not have: its 405 is documented with the path's operation.
        op = next((o for o in ops.values() if isinstance(o, dict) and "405" in o.get("responses", {})), None)
    assert op, f"{method} {path} is not documented"
    resp = op["responses"].get(str(status))
    assert resp, f"{method} {path} answered {status}, which the document does not list"
    media = (ctype or "").split(";")[0].strip()
    content = resp.get("content", {})
    assert media in content, f"{method} {path} {status}: the answer is {media}; documented: {list(content)}"
    return content[media]["schema"]


def assert_matches(doc, path, method, reply):
    """Checks reply against doc, which is a pair (served, docs/openapi.json): both must describe it
    (they are meant to be one document; test_served_document_is_the_one_in_docs checks that)."""
    for which, d in zip(("GET /openapi.json", "docs/openapi.json"), doc):
        schema = documented_schema(d, path, method, reply.status, reply.headers.get("content-type"))
        errors = check(d, schema, reply.json)
        assert not errors, f"per {which}:\n" + "\n".join(errors) + "\n\n" + show(reply.json)


def assert_request_documented(doc, obj):
    for which, d in zip(("GET /openapi.json", "docs/openapi.json"), doc):
        schema = d["paths"]["/api/execute"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        errors = check(d, schema, obj)
        assert not errors, f"the request sent is not described by {which}:\n" + "\n".join(errors)


PLOT_AND_FILES = '''
import matplotlib
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(2, 1.5))
ax.plot([1, 2, 3], [3, 1, 2])
plt.show()
with open("report.txt", "w") as f:
    f.write("hello\\n")
with open("blob.bin", "wb") as f:
    f.write(bytes(range(256)))
print("made them")
{"answer": 42}
'''

RUNS = {
    "success": ({"code": 'print("hi")'}, lambda b: b["status"] == "Success" and b["error"] is None),
    "error-with-traceback": (
        {"code": "def f():\n    raise ValueError('bad')\nf()\n"},
        lambda b: b["status"] == "Error" and isinstance(b["error"]["traceback"], str)),
    "syntax-error": ({"code": "x = ("}, lambda b: b["status"] == "Error" and b["error"] is not None),
    "exit-code": ({"code": "import sys\nsys.exit(3)"}, lambda b: b["exit_code"] == 3),
    "timeout": ({"code": "import time\nprint('start', flush=True)\ntime.sleep(10)", "timeout": 1},
                lambda b: b["error"]["type"] == "Timeout"),
    "killed-by-signal": ({"code": "import ctypes\nctypes.string_at(0)"},
                         lambda b: b["signal"] is not None and b["exit_code"] is None),
    "memory-limit": ({"code": "x = b'y' * (600 * 1024 * 1024)"},
                     lambda b: b["error"]["type"] in ("MemoryLimit", "MemoryError")),
    "output-limit": ({"code": "import sys\nsys.stdout.write('x' * 200000)"},
                     lambda b: b["truncated"] is True),
    "images-result-files": (
        {"code": PLOT_AND_FILES, "return_files": True},
        lambda b: b["images"] and b["result"] is not None and len(b["files"]) >= 2),
    "svg-and-file-patterns": (
        {"code": PLOT_AND_FILES, "return_files": ["*.txt"], "image_format": "svg",
         "stdin": "in\n", "files": [{"name": "up.txt", "content": "aGk=", "encoding": "base64"}],
         "memory_mb": 128},
        lambda b: b["images"] and b["images"][0]["format"] == "svg" and b["files"]),
    "dataframe-result": ({"code": "import pandas as pd\npd.DataFrame({'a': [1, 2]})"},
                         lambda b: b["result"] and "text/html" in b["result"]),
}


@pytest.mark.parametrize("name", list(RUNS))
def test_real_run_answers_match_the_document(server, docs, name):
    obj, shows_the_case = RUNS[name]
    assert_request_documented(docs, obj)
    r = post_json(server, obj, timeout=60)
    assert r.status == 200 and r.json is not None, show(r)
    assert shows_the_case(r.json), f"the answer does not show the case {name!r}: " + show(r.json)
    assert_matches(docs, "/api/execute", "POST", r)


def test_a_fabricated_extra_field_would_be_caught(server, docs):
    """The check above is not vacuous: the same real answer with one more field, or one
    required field less, fails it."""
    r = post_json(server, {"code": "print(1)"}, timeout=60)
    assert r.status == 200, show(r)
    served = docs[1]  # the repository's document
    schema = documented_schema(served, "/api/execute", "POST", 200, r.headers.get("content-type"))
    assert check(served, schema, r.json) == []
    extra = dict(r.json, undocumented=1)
    assert check(served, schema, extra), "an undescribed field passed"
    for field in schema_required(served, schema):
        less = copy.deepcopy(r.json)
        del less[field]
        assert check(served, schema, less), f"an answer without {field} passed"


def schema_required(doc, schema):
    if "$ref" in schema:
        return schema_required(doc, resolve(doc, schema["$ref"]))
    return schema.get("required", [])


@pytest.mark.parametrize("method,body,ctype,status", [
    ("POST", b"{not json", "application/json", 400),
    ("POST", b'{"code": "print(1)", "nope": 1}', "application/json", 400),
    ("POST", b'{"code": 1}', "application/json", 400),
    ("POST", b'{"code": "x", "timeout": 999}', "application/json", 400),
    ("POST", b'{"code": "print(1)"}', "text/plain", 415),
    ("POST", b'{"code": "' + b"x" * 70000 + b'"}', "application/json", 413),
    ("GET", None, None, 405),
])
def test_error_answers_match_the_document(server, docs, method, body, ctype, status):
    headers = {"Content-Type": ctype} if ctype else {}
    r = request(server, method, "/api/execute", body=body, headers=headers, timeout=30)
    assert r.status == status, show(r)
    assert_matches(docs, "/api/execute", method, r)


def test_health_answer_matches_the_document(server, docs):
    r = request(server, "GET", "/health", timeout=30)
    assert r.status == 200, show(r)
    assert_matches(docs, "/health", "GET", r)


def test_metrics_and_openapi_answers_match_the_document(server, docs):
    r = request(server, "GET", "/metrics", timeout=30)
    assert r.status == 200, show(r)
    for d in docs:
        documented_schema(d, "/metrics", "GET", 200, r.headers.get("content-type"))
    r = request(server, "GET", "/openapi.json", timeout=30)
    assert r.status == 200, show(r)
    assert_matches(docs, "/openapi.json", "GET", r)
