// The snakebox playground: notebook cells over a session (POST /api/sessions, then each cell a
// POST /api/sessions/{id}/execute read as it streams, Accept: application/x-ndjson), or over
// plain POST /api/execute when the server has sessions disabled.
//
// Everything a cell prints, returns or writes is untrusted, and so is every field of the
// server's answers that carries it: text goes into the page only through textContent (never
// innerHTML); figures only as <img src="data:image/png|svg+xml;base64,..."> (an SVG shown as an
// image runs no script); a text/html result only inside <iframe sandbox srcdoc> without
// allow-scripts; a file only as an application/octet-stream blob with `download`. The page's
// Content-Security-Policy (src/playground.c) is the second wall: no inline script, no other
// origin. An API key, when the server needs one, is kept in sessionStorage and sent only as
// Authorization: Bearer, never in a URL.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const KEY_STORE = "snakebox-api-key";
  // The tab's session id, so that a reload keeps the variables (the id is useless without the
  // key that made it, when the server has keys).
  const SID_STORE = "snakebox-session";

  const EXAMPLES = [
    {
      name: "pandas: sales summary",
      code:
        'import pandas as pd\nimport numpy as np\n\n# Create sample data\ndata = {\n' +
        '    "date": pd.date_range(start="2024-01-01", periods=10),\n' +
        '    "sales": np.random.randint(100, 1000, 10),\n' +
        '    "category": np.random.choice(["A", "B", "C"], 10)\n}\n\n' +
        "# Create DataFrame\ndf = pd.DataFrame(data)\n\n" +
        '# Basic analysis\nprint("\\nDaily Sales Summary:")\nprint(df.describe())\n\n' +
        '# Category analysis\nprint("\\nSales by Category:")\n' +
        'print(df.groupby("category")["sales"].agg(["mean", "sum"]))\n\n' +
        '# Find best performing day\nbest_day = df.loc[df["sales"].idxmax()]\n' +
        'print(f"\\nBest Sales Day:\\n{best_day}")',
    },
    {
      name: "Bar chart",
      code:
        "import matplotlib.pyplot as plt\n\n" +
        'cities = ["Oslo", "Lima", "Cairo", "Hanoi"]\ntemps = [4, 19, 27, 24]\n' +
        "fig, ax = plt.subplots(figsize=(6, 3.5))\n" +
        'ax.bar(cities, temps, color="#3b82f6")\nax.set_ylabel("°C")\n' +
        'ax.set_title("Average temperature")\nplt.show()',
    },
    {
      name: "CSV round trip",
      code:
        "import pandas as pd\n\n" +
        'df = pd.DataFrame({"city": ["Oslo", "Lima", "Cairo"], "temp": [4, 19, 27]})\n' +
        'df.to_csv("temps.csv", index=False)      # into /work: see Files below\n' +
        'back = pd.read_csv("temps.csv")\n' +
        'print(open("temps.csv").read())\nback[back.temp > 10]',
    },
  ];

  const state = {
    mode: "session", // "oneshot" once the server says sessions are disabled
    sid: sessionStorage.getItem(SID_STORE),
    key: sessionStorage.getItem(KEY_STORE) || "",
    idleTimeout: 0, // the session's idle_timeout, seconds
    idleDeadline: 0, // Date.now() when it ends if nothing happens
    chain: Promise.resolve(), // cells run one at a time, in the order asked
    // A session does one thing at a time (else 409 SessionBusy): cells and file operations
    // take turns through this. Interrupt and restart do not wait for it.
    lock: Promise.resolve(),
    running: null, // {cell, ctl}
    stopAll: false,
  };

  function setStatus(text) {
    $("status").textContent = text;
  }

  function authHeaders(extra) {
    const h = Object.assign({}, extra || {});
    if (state.key) h["Authorization"] = "Bearer " + state.key;
    return h;
  }

  function askKey() {
    $("key-box").hidden = false;
    $("key").focus();
    setStatus("This server needs an API key: enter it above, then run again.");
  }

  // fetch with the key; a 401 asks for one. Same origin only: the paths are absolute and the
  // CSP allows connect-src 'self'.
  async function api(method, path, body, extraHeaders, signal) {
    const init = { method, headers: authHeaders(extraHeaders), cache: "no-store", redirect: "error" };
    if (body !== undefined) init.body = body;
    if (signal) init.signal = signal;
    const r = await fetch(path, init);
    if (r.status === 401) askKey();
    return r;
  }

  async function jsonOf(r) {
    try {
      return await r.json();
    } catch (e) {
      return null;
    }
  }

  function errorText(j, r) {
    if (j && j.error && typeof j.error.message === "string") return j.error.message;
    if (j && typeof j.output === "string") return j.output;
    return "HTTP " + r.status;
  }

  function sessionPath(suffix) {
    return "/api/sessions/" + encodeURIComponent(state.sid) + (suffix || "");
  }

  // The session object's idle_timeout: the countdown restarts at the end of every cell and
  // file operation (as the server's does).
  function noteSession(obj) {
    if (obj && typeof obj.idle_timeout === "number") state.idleTimeout = obj.idle_timeout;
    touchSession();
  }

  function touchSession() {
    if (state.sid && state.idleTimeout) state.idleDeadline = Date.now() + state.idleTimeout * 1000;
    tick();
  }

  function forgetSession(why) {
    state.sid = null;
    sessionStorage.removeItem(SID_STORE);
    state.idleDeadline = 0;
    $("files").replaceChildren();
    if (why) setStatus(why);
    tick();
  }

  function tick() {
    const el = $("remaining");
    if (state.mode === "oneshot") {
      el.textContent = "one-shot mode: sessions are disabled, variables do not carry over";
      return;
    }
    if (!state.sid) {
      el.textContent = "no session yet";
      return;
    }
    if (state.running) {
      el.textContent = "session busy";
      return;
    }
    const left = Math.max(0, Math.round((state.idleDeadline - Date.now()) / 1000));
    if (left === 0 && state.idleDeadline) {
      forgetSession("The session ended after its idle timeout; the next cell starts a new one.");
      return;
    }
    const m = Math.floor(left / 60);
    const s = String(left % 60).padStart(2, "0");
    el.textContent = "session idle time left " + m + ":" + s;
  }

  async function ensureSession() {
    if (state.mode === "oneshot") return null;
    if (state.sid) return state.sid;
    const r = await api("POST", "/api/sessions", "{}", { "Content-Type": "application/json" });
    const j = await jsonOf(r);
    if (r.status === 201 && j && typeof j.session_id === "string") {
      state.sid = j.session_id;
      sessionStorage.setItem(SID_STORE, state.sid);
      noteSession(j);
      setStatus("Session started.");
      return state.sid;
    }
    if (r.status === 404 && j && j.error && j.error.type === "SessionsDisabled") {
      state.mode = "oneshot";
      $("files-panel").hidden = true;
      setStatus("Sessions are disabled on this server: each cell runs on its own.");
      return null;
    }
    throw new Error("cannot start a session: " + errorText(j, r));
  }

  // ---- cells ------------------------------------------------------------------------------

  const cells = [];

  function newCell(code, after) {
    const cell = { el: document.createElement("div") };
    cell.el.className = "cell";
    cell.prompt = document.createElement("div");
    cell.prompt.className = "prompt";
    cell.prompt.textContent = "In [ ]:";
    cell.editor = document.createElement("textarea");
    cell.editor.className = "editor";
    cell.editor.spellcheck = false;
    cell.editor.setAttribute("autocapitalize", "off");
    cell.editor.setAttribute("aria-label", "code cell");
    cell.editor.value = code || "";
    const tools = document.createElement("div");
    tools.className = "tools";
    const run = button("Run", () => runCell(cell, false));
    cell.stopBtn = button("Stop", () => stopCell(cell));
    cell.stopBtn.hidden = true;
    const del = button("Delete", () => deleteCell(cell));
    tools.append(run, cell.stopBtn, del);
    cell.out = document.createElement("div");
    cell.out.className = "output";
    cell.el.append(cell.prompt, cell.editor, tools, cell.out);

    cell.editor.addEventListener("keydown", (e) => onKey(cell, e));
    cell.editor.addEventListener("input", () => fit(cell.editor));
    cell.editor.addEventListener("focus", () => activate(cell));

    const i = after ? cells.indexOf(after) + 1 : cells.length;
    cells.splice(i, 0, cell);
    const next = cells[i + 1];
    $("cells").insertBefore(cell.el, next ? next.el : null);
    fit(cell.editor);
    return cell;
  }

  function button(label, onClick) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.addEventListener("click", onClick);
    return b;
  }

  function fit(ta) {
    ta.rows = Math.max(2, ta.value.split("\n").length);
  }

  function activate(cell) {
    for (const c of cells) c.el.classList.toggle("active", c === cell);
  }

  function deleteCell(cell) {
    if (state.running && state.running.cell === cell) return;
    const i = cells.indexOf(cell);
    cells.splice(i, 1);
    cell.el.remove();
    if (!cells.length) newCell("");
  }

  function onKey(cell, e) {
    const ta = cell.editor;
    if (e.key === "Enter" && e.shiftKey) {
      e.preventDefault();
      runCell(cell, true);
    } else if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      runCell(cell, false);
    } else if (e.key === "Tab" && !e.ctrlKey && !e.altKey && !e.metaKey) {
      e.preventDefault();
      const start = ta.selectionStart;
      const lineStart = ta.value.lastIndexOf("\n", start - 1) + 1;
      if (e.shiftKey) {
        const lead = ta.value.slice(lineStart, lineStart + 4).match(/^ */)[0].length;
        if (lead) {
          ta.setRangeText("", lineStart, lineStart + lead, "preserve");
          ta.selectionStart = ta.selectionEnd = Math.max(lineStart, start - lead);
        }
      } else {
        ta.setRangeText("    ", start, ta.selectionEnd, "end");
      }
      fit(ta);
    } else if (e.key === "Enter" && !e.altKey) {
      // Keep the line's indentation, one more level after a colon.
      e.preventDefault();
      const start = ta.selectionStart;
      const lineStart = ta.value.lastIndexOf("\n", start - 1) + 1;
      const line = ta.value.slice(lineStart, start);
      let indent = line.match(/^[ \t]*/)[0];
      if (/:\s*$/.test(line)) indent += "    ";
      ta.setRangeText("\n" + indent, start, ta.selectionEnd, "end");
      fit(ta);
    }
  }

  // Shift+Enter: run, then the next cell (a new one at the end) gets the focus at once, so the
  // next cell can be typed while this one runs.
  function runCell(cell, advance) {
    cell.prompt.textContent = "In [*]:";
    cell.queued = true;
    const p = (state.chain = state.chain.then(() => execCell(cell)));
    if (advance) {
      const i = cells.indexOf(cell);
      const next = cells[i + 1] || newCell("", cell);
      next.editor.focus();
    }
    return p;
  }

  function runAll() {
    state.stopAll = false;
    for (const c of cells) {
      state.chain = state.chain.then(async () => {
        if (state.stopAll) {
          c.prompt.textContent = "In [ ]:";
          return;
        }
        const ok = await execCell(c);
        if (!ok) state.stopAll = true;
      });
      c.prompt.textContent = "In [*]:";
    }
  }

  function stopCell(cell) {
    if (state.running && state.running.cell === cell) state.running.ctl.abort();
  }

  // ---- output -----------------------------------------------------------------------------

  function addText(cell, kind, text) {
    const last = cell.out.lastElementChild;
    if (last && last.tagName === "PRE" && last.className === kind) {
      last.append(text); // a Text node: never parsed, and no copy of what is already there
      return;
    }
    const pre = document.createElement("pre");
    pre.className = kind;
    pre.textContent = text;
    cell.out.append(pre);
  }

  // A figure: only PNG or SVG, only base64, only as an <img> (a script in an SVG does not run
  // in an image; inline it would).
  function addImage(cell, img) {
    if (!img || typeof img.data !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(img.data)) return;
    const type = img.format === "png" ? "image/png" : img.format === "svg" ? "image/svg+xml" : null;
    if (!type) return;
    const el = document.createElement("img");
    el.className = "figure";
    el.alt = "figure";
    if (typeof img.width === "number" && img.width > 0) el.width = Math.min(img.width, 2000);
    el.src = "data:" + type + ";base64," + img.data;
    cell.out.append(el);
  }

  // A text/html result (a DataFrame): in a sandboxed iframe, no allow-scripts, no
  // allow-same-origin: it can neither run script nor reach this page.
  function addHtml(cell, html) {
    const f = document.createElement("iframe");
    f.className = "html";
    f.setAttribute("sandbox", "");
    f.setAttribute("referrerpolicy", "no-referrer");
    f.title = "result";
    f.srcdoc = html;
    cell.out.append(f);
  }

  function finish(cell, ans, seen) {
    if (typeof ans.execution_count === "number")
      cell.prompt.textContent = "In [" + ans.execution_count + "]:";
    else if (state.mode === "oneshot") cell.prompt.textContent = "In [–]:";
    if (!seen.images && Array.isArray(ans.images)) for (const img of ans.images) addImage(cell, img);
    const err = ans.error;
    if (err && typeof err === "object") {
      const tb = typeof err.traceback === "string" ? err.traceback : "";
      if (!tb || !seen.stderr.includes(tb.trim())) {
        const msg = tb || String(err.type || "Error") + ": " + String(err.message || "");
        addText(cell, "traceback", msg.endsWith("\n") ? msg : msg + "\n");
      }
    }
    const res = ans.result;
    if (res && typeof res === "object") {
      if (typeof res["text/html"] === "string") addHtml(cell, res["text/html"]);
      else if (typeof res["text/plain"] === "string") addText(cell, "result", res["text/plain"] + "\n");
    }
    if (ans.images_dropped) addText(cell, "message", ans.images_dropped + " figure(s) not shown (MAX_IMAGES)\n");
    if (ans.truncated) addText(cell, "message", "output cut at MAX_OUTPUT_BYTES\n");
    const s = ans.session;
    if (s && typeof s === "object" && s.reset)
      addText(cell, "message", (typeof s.message === "string" ? s.message : "the session was reset") + "\n");
    if (typeof ans.duration_ms === "number") {
      const st = document.createElement("div");
      st.className = "stats";
      const mem = typeof ans.memory_peak_bytes === "number" ? (ans.memory_peak_bytes / 1048576).toFixed(1) : "?";
      st.textContent = ans.status + " · " + ans.duration_ms + " ms · CPU " + ans.cpu_ms + " ms · peak " + mem + " MiB";
      cell.out.append(st);
    }
    if (err && err.type === "SessionGone") forgetSession("The session is gone (" + (err.reason || "ended") + "); the next cell starts a new one.");
    return ans.status === "Success";
  }

  // Runs fn when the session's previous operation is done; resolves to fn's result.
  function withSession(fn) {
    const p = state.lock.then(fn);
    state.lock = p.catch(() => {});
    return p;
  }

  // Runs one cell and shows its output as it streams. Resolves to true when it succeeded.
  function execCell(cell) {
    return withSession(() => execCellNow(cell));
  }

  async function execCellNow(cell) {
    cell.queued = false;
    cell.out.replaceChildren();
    cell.el.classList.add("running");
    cell.stopBtn.hidden = false;
    const ctl = new AbortController();
    state.running = { cell, ctl };
    tick();
    const seen = { images: false, stderr: "", ended: false };
    let ok = false;
    try {
      let r;
      // A session that ended while the page was idle (its idle timeout, its lifetime, deleted,
      // a restart of the server) is 410 or 404 before the cell runs: once, a new session takes
      // the cell, and the cell says that the earlier variables are gone.
      for (let attempt = 0; ; attempt++) {
        const sid = await ensureSession();
        const path = sid ? sessionPath("/execute") : "/api/execute";
        r = await api(
          "POST",
          path,
          JSON.stringify({ code: cell.editor.value, image_format: $("figure-format").value }),
          { "Content-Type": "application/json", Accept: "application/x-ndjson" },
          ctl.signal
        );
        const ct = r.headers.get("Content-Type") || "";
        if (ct.startsWith("application/x-ndjson")) break;
        // Refused before the run: the JSON error.
        const j = await jsonOf(r);
        const gone = sid && (r.status === 410 || (r.status === 404 && j && j.error && j.error.type === "SessionNotFound"));
        if (gone) {
          const reason = j && j.error && typeof j.error.reason === "string" ? j.error.reason : "ended";
          forgetSession("");
          if (attempt === 0) {
            addText(cell, "message", "The session had ended (" + reason + "): a new one runs this cell; earlier variables are gone.\n");
            continue;
          }
        }
        cell.prompt.textContent = "In [!]:";
        addText(cell, "traceback", errorText(j, r) + "\n");
        return false;
      }
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      let pending = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        pending += dec.decode(value, { stream: true });
        let nl;
        while ((nl = pending.indexOf("\n")) >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          if (!line.trim()) continue;
          let ev;
          try {
            ev = JSON.parse(line);
          } catch (e) {
            continue;
          }
          if (!ev || typeof ev !== "object") continue;
          if (ev.type === "start" && typeof ev.execution_count === "number") {
            cell.prompt.textContent = "In [" + ev.execution_count + "]:";
          } else if ((ev.type === "stdout" || ev.type === "stderr") && typeof ev.text === "string") {
            if (ev.type === "stderr") seen.stderr += ev.text;
            addText(cell, ev.type, ev.text);
          } else if (ev.type === "image") {
            seen.images = true;
            addImage(cell, ev);
          } else if (ev.type === "end") {
            seen.ended = true;
            ok = finish(cell, ev, seen);
          }
        }
      }
      if (!seen.ended) addText(cell, "message", "the connection ended before the cell did\n");
    } catch (e) {
      if (cell.prompt.textContent === "In [*]:") cell.prompt.textContent = "In [!]:";
      if (e && e.name === "AbortError") addText(cell, "message", "stopped\n");
      else addText(cell, "traceback", String(e && e.message ? e.message : e) + "\n");
    } finally {
      state.running = null;
      cell.el.classList.remove("running");
      cell.stopBtn.hidden = true;
      touchSession();
      // After Stop the server is still interrupting the cell: the files can wait.
      if (state.sid && seen.ended) refreshFiles();
    }
    return ok;
  }

  // ---- session controls -------------------------------------------------------------------

  async function interrupt() {
    if (state.mode === "oneshot" || !state.sid) {
      if (state.running) state.running.ctl.abort();
      return;
    }
    const r = await api("POST", sessionPath("/interrupt"));
    const j = await jsonOf(r);
    if (r.ok && j) setStatus(j.interrupted ? (j.reset ? "Interrupted; the interpreter was replaced." : "Interrupted.") : "Nothing was running.");
    else setStatus("Interrupt failed: " + errorText(j, r));
  }

  async function restart() {
    if (state.mode === "oneshot") return;
    state.stopAll = true;
    if (!state.sid) {
      setStatus("Restarted (no session was running).");
      return;
    }
    const r = await api("POST", sessionPath("/restart"), "{}", { "Content-Type": "application/json" });
    const j = await jsonOf(r);
    if (r.ok) {
      noteSession(j);
      for (const c of cells) if (!c.queued && !(state.running && state.running.cell === c)) c.prompt.textContent = "In [ ]:";
      setStatus("Restarted: a fresh interpreter, every variable is gone.");
    } else {
      if (r.status === 410) forgetSession();
      setStatus("Restart failed: " + errorText(j, r));
    }
  }

  // A session kept from before a reload: still there (GET does not extend its life)?
  async function resume() {
    const r = await api("GET", sessionPath());
    const j = await jsonOf(r);
    if (r.ok && j && j.session_id === state.sid) {
      state.idleTimeout = j.idle_timeout;
      const at = Date.parse(j.idle_expires_at);
      state.idleDeadline = isNaN(at) ? Date.now() + j.idle_timeout * 1000 : at;
      setStatus("Reconnected to this tab's session (cell " + j.execution_count + ").");
      refreshFiles();
    } else if (r.status !== 401) {
      forgetSession("");
    }
  }

  // ---- files ------------------------------------------------------------------------------

  function refreshFiles() {
    return withSession(listFiles);
  }

  async function listFiles() {
    if (!state.sid || state.running) return;
    const r = await api("GET", sessionPath("/files"));
    const j = await jsonOf(r);
    const ul = $("files");
    ul.replaceChildren();
    if (!r.ok || !j || !Array.isArray(j.files)) return;
    for (const f of j.files) {
      if (!f || typeof f.name !== "string") continue;
      const li = document.createElement("li");
      li.textContent = f.name + " (" + Number(f.size) + " bytes)";
      li.append(button("Download", () => download(f.name)));
      ul.append(li);
    }
  }

  function filePath(name) {
    return sessionPath("/files/" + name.split("/").map(encodeURIComponent).join("/"));
  }

  // The bytes as an opaque blob saved under a plain name: never opened, never rendered here.
  function download(name) {
    return withSession(() => downloadNow(name));
  }

  async function downloadNow(name) {
    const r = await api("GET", filePath(name));
    if (!r.ok) {
      setStatus("Download failed: HTTP " + r.status);
      return;
    }
    const blob = new Blob([await r.arrayBuffer()], { type: "application/octet-stream" });
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = name.split("/").pop().replace(/[^A-Za-z0-9._-]/g, "_") || "file";
    a.rel = "noopener";
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  function upload(files) {
    return withSession(() => uploadNow(files));
  }

  async function uploadNow(files) {
    try {
      if (!(await ensureSession())) return;
    } catch (e) {
      setStatus(String(e.message || e));
      return;
    }
    for (const f of files) {
      const r = await api("PUT", filePath(f.name), f, { "Content-Type": "application/octet-stream" });
      if (!r.ok) setStatus("Upload of " + f.name + " failed: " + errorText(await jsonOf(r), r));
      else touchSession();
    }
    $("upload").value = "";
    await listFiles();
  }

  // ---- start ------------------------------------------------------------------------------

  function init() {
    for (const [i, ex] of EXAMPLES.entries()) {
      const o = document.createElement("option");
      o.value = String(i);
      o.textContent = ex.name;
      $("examples").append(o);
    }
    $("examples").addEventListener("change", (e) => {
      const ex = EXAMPLES[Number(e.target.value)];
      e.target.value = "";
      if (!ex) return;
      const last = cells[cells.length - 1];
      const cell = last && !last.editor.value.trim() ? last : newCell("");
      cell.editor.value = ex.code;
      fit(cell.editor);
      cell.editor.focus();
    });
    $("run-all").addEventListener("click", runAll);
    $("interrupt").addEventListener("click", interrupt);
    $("restart").addEventListener("click", restart);
    $("add-cell").addEventListener("click", () => newCell("").editor.focus());
    $("refresh-files").addEventListener("click", refreshFiles);
    $("upload").addEventListener("change", (e) => upload(Array.from(e.target.files)));
    if (state.key) $("key-box").hidden = false;
    $("key").value = state.key;
    const setKey = () => {
      state.key = $("key").value.trim();
      if (state.key) sessionStorage.setItem(KEY_STORE, state.key);
      else sessionStorage.removeItem(KEY_STORE);
      setStatus(state.key ? "Key set for this tab." : "Key cleared.");
    };
    $("key").addEventListener("change", setKey);
    $("key").addEventListener("keydown", (e) => {
      if (e.key === "Enter") setKey();
    });
    newCell('print("Hello from a sealed sandbox")').editor.focus();
    if (state.sid) resume();
    setInterval(tick, 1000);
    tick();
  }

  init();
})();
