// A snakebox server for the MCP tests: started on a free loopback port with small pools, stopped
// by its pid (SIGTERM, then waited for).
import { spawn } from "node:child_process";

export function startServer(bin, env = {}) {
  const full = {
    PATH: process.env.PATH,
    HOST: "127.0.0.1",
    PORT: "0",
    POOL_SIZE: "1",
    LEAN_POOL_SIZE: "1",
    MEMORY_LIMIT_MB: "512",
    SHUTDOWN_GRACE: "1",
    ...env,
  };
  const proc = spawn(bin, ["serve"], { env: full, stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the server did not listen within 60 s")), 60000);
    proc.stderr.on("data", (d) => {
      log += d;
      const m = /snakebox: listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on("exit", (code) => reject(new Error(`the server exited (${code}) before listening:\n${log}`)));
  });
  return { proc, ready, log: () => log };
}

export async function stopServer(server) {
  if (server.proc.exitCode === null && server.proc.signalCode === null) {
    const exited = new Promise((ok) => server.proc.on("exit", ok));
    server.proc.kill("SIGTERM");
    await exited;
  }
}
