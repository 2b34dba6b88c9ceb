// The official MCP TypeScript SDK's client against snakebox's /mcp (make mcp-test): what an agent
// does, end to end. Starts its own server (SNAKEBOX_BIN, else build/snakebox) with an API key on a
// free loopback port, runs each check in order and stops the server by its pid. Exits 1 on the
// first failed check, with the server's stderr.
//
// Run from build/mcp-client (where `npm ci` put node_modules):
//   node sdk-client.mjs /path/to/snakebox
import assert from "node:assert/strict";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

import { startServer, stopServer } from "./server.mjs";

const BIN = process.argv[2] || process.env.SNAKEBOX_BIN || "build/snakebox";
const KEY = "mcp-test-key-" + Math.random().toString(36).slice(2);

async function connect(url, key) {
  const headers = key ? { Authorization: `Bearer ${key}` } : {};
  const client = new Client({ name: "snakebox-mcp-test", version: "1.0.0" });
  const transport = new StreamableHTTPClientTransport(new URL(url + "/mcp"), { requestInit: { headers } });
  await client.connect(transport);
  return client;
}

function text(result) {
  return result.content.filter((c) => c.type === "text").map((c) => c.text).join("\n");
}

const checks = [];
const check = (name, fn) => checks.push({ name, fn });

let client, url;

check("connect: initialize negotiates a revision the SDK knows, no MCP session id", async () => {
  client = await connect(url, KEY);
  const caps = client.getServerCapabilities();
  assert.ok(caps.tools, "the server announces tools");
  assert.equal(client.getServerVersion().name, "snakebox");
  assert.equal(client.transport.sessionId, undefined, "stateless: no Mcp-Session-Id");
});

check("tools/list: the six tools, with input schemas and annotations", async () => {
  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name).sort();
  assert.deepEqual(names, ["close_session", "create_session", "list_files", "read_file", "run_python", "write_file"]);
  const run = tools.find((t) => t.name === "run_python");
  assert.deepEqual(run.inputSchema.required, ["code"]);
  assert.equal(run.annotations.openWorldHint, false);
  assert.ok(run.outputSchema, "run_python has an outputSchema");
  assert.match(run.description, /no network/i);
});

check("run_python: print", async () => {
  const r = await client.callTool({ name: "run_python", arguments: { code: "print('hello from mcp')\n6*7" } });
  assert.equal(r.isError, false);
  assert.match(text(r), /hello from mcp/);
  assert.match(text(r), /42/);
  assert.equal(r.structuredContent.status, "Success");
  assert.equal(r.structuredContent.result, "42");
});

check("run_python: a figure comes as an image block that decodes as PNG", async () => {
  const r = await client.callTool({
    name: "run_python",
    arguments: { code: "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()" },
  });
  assert.equal(r.isError, false, text(r));
  const images = r.content.filter((c) => c.type === "image");
  assert.equal(images.length, 1);
  assert.equal(images[0].mimeType, "image/png");
  const png = Buffer.from(images[0].data, "base64");
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.ok(png.length > 100);
});

check("run_python: an exception is isError with its traceback", async () => {
  const r = await client.callTool({ name: "run_python", arguments: { code: "def f():\n    1/0\nf()" } });
  assert.equal(r.isError, true);
  assert.match(text(r), /ZeroDivisionError: division by zero/);
  assert.equal(r.structuredContent.error.type, "ZeroDivisionError");
});

check("sessions: create, set a variable, read it, close, then the session is gone", async () => {
  const c = await client.callTool({ name: "create_session", arguments: { idle_timeout: 120 } });
  assert.equal(c.isError, false, text(c));
  const sid = c.structuredContent.session_id;
  assert.match(text(c), new RegExp(sid));
  let r = await client.callTool({ name: "run_python", arguments: { session_id: sid, code: "x = 41" } });
  assert.equal(r.isError, false, text(r));
  r = await client.callTool({ name: "run_python", arguments: { session_id: sid, code: "x + 1" } });
  assert.equal(r.isError, false, text(r));
  assert.equal(r.structuredContent.result, "42");
  assert.equal(r.structuredContent.execution_count, 2);
  const w = await client.callTool({
    name: "write_file",
    arguments: { session_id: sid, path: "data/in.txt", content: "a,b\n1,2\n" },
  });
  assert.equal(w.isError, false, text(w));
  const l = await client.callTool({ name: "list_files", arguments: { session_id: sid } });
  assert.match(text(l), /data\/in\.txt\t8 bytes/);
  const f = await client.callTool({ name: "read_file", arguments: { session_id: sid, path: "data/in.txt" } });
  assert.equal(text(f), "a,b\n1,2\n");
  const d = await client.callTool({ name: "close_session", arguments: { session_id: sid } });
  assert.equal(d.isError, false, text(d));
  r = await client.callTool({ name: "run_python", arguments: { session_id: sid, code: "x" } });
  assert.equal(r.isError, true);
  assert.match(text(r), /gone/);
  assert.match(text(r), /create_session/);
});

check("progress: output arrives as notifications/progress before the result", async () => {
  const seen = [];
  const r = await client.callTool(
    {
      name: "run_python",
      arguments: { code: "import time\nfor i in range(3):\n    print('line', i, flush=True)\n    time.sleep(0.3)" },
    },
    undefined,
    { onprogress: (p) => seen.push(p) },
  );
  assert.equal(r.isError, false, text(r));
  assert.equal(text(r), "line 0\nline 1\nline 2\n");
  assert.ok(seen.length >= 2, `at least two progress notifications, got ${seen.length}`);
  assert.equal(seen.map((p) => p.message).join(""), "line 0\nline 1\nline 2\n");
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i].progress > seen[i - 1].progress, "progress increases");
});

check("cancellation: an aborted call interrupts its session's cell", async () => {
  const c = await client.callTool({ name: "create_session", arguments: {} });
  const sid = c.structuredContent.session_id;
  const abort = new AbortController();
  const call = client.callTool(
    {
      name: "run_python",
      arguments: { session_id: sid, code: "import time\nprint('started', flush=True)\ntime.sleep(30)\ndone = True" },
    },
    undefined,
    { signal: abort.signal, onprogress: () => abort.abort("test cancels") },
  );
  await assert.rejects(call);
  // The cell was interrupted: the session takes a new call soon (not after 30 s) and the line
  // after the sleep never ran. Busy for a moment while the interrupt lands is allowed.
  let r;
  for (let i = 0; i < 50; i++) {
    r = await client.callTool({ name: "run_python", arguments: { session_id: sid, code: "globals().get('done', False)" } });
    if (!(r.isError && /busy/.test(text(r)))) break;
    await new Promise((ok) => setTimeout(ok, 200));
  }
  assert.equal(r.isError, false, text(r));
  assert.equal(r.structuredContent.result, "False");
  await client.callTool({ name: "close_session", arguments: { session_id: sid } });
});

check("auth: a client without the key cannot connect (401)", async () => {
  for (const key of [null, "wrong-key"])
    await assert.rejects(connect(url, key), (e) => e.code === 401 && /Unauthorized/.test(e.message));
});

const server = startServer(BIN, { API_KEYS: KEY, EXECUTION_TIMEOUT: "60" });
let failed = false;
try {
  url = await server.ready;
  for (const { name, fn } of checks) {
    try {
      await fn();
      console.log(`ok   ${name}`);
    } catch (e) {
      console.log(`FAIL ${name}\n     ${e.stack || e}`);
      failed = true;
      break;
    }
  }
  await client?.close();
} catch (e) {
  console.log(`FAIL ${e.stack || e}`);
  failed = true;
} finally {
  await stopServer(server);
}
if (failed) {
  console.log("--- server stderr ---\n" + server.log().slice(-6000));
  process.exit(1);
}
console.log(`all ${checks.length} SDK client checks passed`);
