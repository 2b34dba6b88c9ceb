// The official MCP conformance suite's server scenarios against snakebox's /mcp (make mcp-test):
// every active scenario runs; the run passes when exactly the scenarios in
// conformance-baseline.yml (each with its reason) fail. Run from build/mcp-client:
//   node conformance.mjs /path/to/snakebox /path/to/conformance-baseline.yml
import { spawn } from "node:child_process";

import { startServer, stopServer } from "./server.mjs";

const [bin, baseline] = process.argv.slice(2);
const server = startServer(bin, {});
let code = 1;
try {
  const url = await server.ready;
  const run = spawn("node_modules/.bin/conformance",
    ["server", "--url", url + "/mcp", "--expected-failures", baseline], { stdio: "inherit" });
  code = await new Promise((ok) => run.on("exit", (c) => ok(c ?? 1)));
} catch (e) {
  console.log(`FAIL ${e.stack || e}`);
} finally {
  await stopServer(server);
}
if (code !== 0) console.log("--- server stderr ---\n" + server.log().slice(-6000));
process.exit(code);
