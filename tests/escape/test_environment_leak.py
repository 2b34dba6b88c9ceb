"""Attack: read the server's environment. The session server runs with SNAKEBOX_TEST_SECRET set
to a random value; no run may find it, by any route. Against a naive server (python3 in a
subprocess) every one of these finds it."""

import json
import secrets

import pytest

from conftest import CONFIG_KEYS, SANITIZED, SECRET_KEY, code, post_json, request, run_json, show


def assert_secret_absent(server, raw):
    assert server.secret.encode() not in raw, "the run read the server's secret environment variable"
    assert SECRET_KEY.encode() not in raw, "the run saw the name of the server's environment variable"


def test_os_environ_is_a_small_fixed_set(server):
    src = "import json, os\nprint(json.dumps(dict(os.environ)))"
    reply = post_json(server, {"code": src})
    assert reply.status == 200 and reply.json["status"] == "Success", show(reply)
    assert_secret_absent(server, reply.body)
    env = json.loads(reply.json["stdout"])
    leaked = [k for k in env if k in CONFIG_KEYS or k == SECRET_KEY]
    assert not leaked, f"server variables reach the run: {leaked}"
    assert len(env) <= 20, f"the run's environment is not minimal: {sorted(env)}"
    again = run_json(server, src)
    assert sorted(again) == sorted(env), "the run's environment is not fixed"


def test_proc_environ_files_do_not_hold_the_secret(server):
    reply = post_json(server, {"stdin": json.dumps({"server_pid": server.pid}), "code": code('''
        import json, os, sys
        server_pid = json.load(sys.stdin)["server_pid"]
        paths = ["/proc/self/environ", "/proc/thread-self/environ", "/proc/1/environ",
                 "/proc/%d/environ" % server_pid, "/proc/self/cmdline"]
        paths += ["/proc/%s/environ" % p for p in os.listdir("/proc") if p.isdigit()]
        paths += ["/proc/%s/task/%s/environ" % (os.getpid(), t)
                  for t in os.listdir("/proc/%d/task" % os.getpid())]
        found = {}
        for p in paths:
            try:
                with open(p, "rb") as f:
                    found[p] = f.read().decode("latin-1")
            except OSError as e:
                found[p] = "error %d" % e.errno
        print(json.dumps(found))
    ''')})
    assert reply.status == 200 and reply.json["status"] == "Success", show(reply)
    assert_secret_absent(server, reply.body)
    found = json.loads(reply.json["stdout"])
    assert len(found) >= 5, show(found)


def mask(data):
    """(masked hex, mask hex): the run rebuilds `data` only inside one ctypes buffer, so the
    source code it receives never contains the bytes it searches for."""
    m = secrets.token_bytes(len(data))
    return bytes(a ^ b for a, b in zip(data, m)).hex(), m.hex()


# Searches the run's own memory (every readable mapping: heap, stack, anonymous, the binary's
# memfd, files up to their end) for needles,
# with libc's memmem over the live address space: nothing is copied, so the only legitimate
# occurrence of a needle is the buffer that holds it. A sandbox forked from a process that ever
# held the server's environment carries it in its stack (the exec-time environment block) or heap.
MEMORY_SCAN = code('''
    import ctypes, json, os

    libc = ctypes.CDLL(None, use_errno=True)
    libc.memmem.restype = ctypes.c_void_p
    libc.memmem.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]

    def unmask(enc_hex, mask_hex):
        enc, m = bytes.fromhex(enc_hex), bytes.fromhex(mask_hex)
        buf = (ctypes.c_ubyte * len(enc))()
        for i in range(len(enc)):
            buf[i] = enc[i] ^ m[i]
        return buf

    def regions():
        with open("/proc/self/maps") as f:
            for line in f:
                parts = line.split(None, 5)
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                perms = parts[1]
                path = parts[5].strip() if len(parts) > 5 else ""
                if perms[0] != "r" or path in ("[vvar]", "[vvar_vclock]", "[vsyscall]", "[vdso]"):
                    continue
                if path.startswith("/dev/"):
                    continue
                if path.startswith("/") and not path.startswith("/memfd:"):
                    # A file mapping: pages past the file's end would fault (SIGBUS).
                    try:
                        size = os.stat(path).st_size
                    except OSError:
                        continue
                    end = lo + max(0, size - int(parts[2], 16))
                    hi = min(hi, (end + 4095) // 4096 * 4096)
                if hi > lo:
                    yield lo, hi, path

    def scan(needle):
        own = ctypes.addressof(needle)
        hits, scanned = [], 0
        for lo, hi, path in list(regions()):
            scanned += hi - lo
            start = lo
            while start < hi:
                p = libc.memmem(start, hi - start, own, len(needle))
                if not p:
                    break
                if p != own:
                    hits.append("%x %s" % (p, path))
                start = p + 1
        return hits, scanned

    result = {}
    for name, (enc, m) in NEEDLES.items():
        hits, scanned = scan(unmask(enc, m))
        result[name] = hits[:20]
        result["scanned"] = scanned
    planted = bytes(unmask(*PLANTED))  # a copy the scan must find: proves it works
    result["planted"] = len(scan(unmask(*PLANTED))[0])
    print(json.dumps(result))
''')


@pytest.mark.skipif(SANITIZED, reason="a sanitizer build maps terabytes of shadow memory into every "
                    "sandbox, which cannot be scanned; the normal builds run this test")
def test_process_memory_does_not_hold_the_servers_environment(server):
    needles = {"key": mask(SECRET_KEY.encode()), "value": mask(server.secret.encode())}
    planted = mask(b"planted-" + secrets.token_hex(12).encode())
    src = f"NEEDLES = {needles!r}\nPLANTED = {planted!r}\n" + MEMORY_SCAN
    result = run_json(server, src)
    assert result["planted"] >= 1, f"the memory scan does not work: {result}"
    assert result["scanned"] > 1 << 20, show(result)
    assert result["key"] == [], f"the server's environment is in the run's memory: {result}"
    assert result["value"] == [], f"the server's secret is in the run's memory: {result}"


def server_memory_needles(server, extra):
    """Masked needles: values of the server's configuration and its working directory."""
    needles = {name: mask(value.encode()) for name, value in extra.items()}
    needles["cwd"] = mask(str(server.workdir).encode())
    return needles


def scan_as(server, key, needles, prefix=""):
    planted = mask(b"planted-" + secrets.token_hex(12).encode())
    src = prefix + f"NEEDLES = {needles!r}\nPLANTED = {planted!r}\n" + MEMORY_SCAN
    reply = request(server, "POST", "/api/execute", body=json.dumps({"code": src}),
                    headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    assert reply.status == 200 and reply.json["status"] == "Success", show(reply)
    return json.loads(reply.json["stdout"].strip().splitlines()[-1])


@pytest.mark.skipif(SANITIZED, reason="a sanitizer build maps terabytes of shadow memory into every "
                    "sandbox, which cannot be scanned; the normal builds run this test")
@pytest.mark.parametrize("source", ["API_KEYS", "API_KEYS_FILE", "CORS_ORIGINS"])
def test_process_memory_does_not_hold_the_servers_configuration(start_server, tmp_path, source):
    """Attack (security issue, item 1): a run authenticated with tenant A's key scans every
    readable mapping of its own process (stack, heap, anonymous and writable mappings, the
    binary's data) for the server's API keys, the key file's path, the CORS origins and the
    server's working directory. Both zygotes are scanned (plain code runs in the lean one, code
    naming numpy in the full one). Before the fix the pool sent the zygote the whole Config, kept
    on its stack: every sandbox found all keys and paths (API_KEYS: hits in [stack])."""
    key_a, key_b = "tenantA-" + secrets.token_hex(8), "tenantB-" + secrets.token_hex(8)
    env = {"PREINSTALL_LIBS": "numpy", "POOL_SIZE": "1", "LEAN_POOL_SIZE": "1"}
    secret = {}
    if source == "API_KEYS":
        env["API_KEYS"] = f"{key_a},{key_b}"
        secret = {"key_b": key_b, "key_a_b": f"{key_a},{key_b}"}
    elif source == "API_KEYS_FILE":
        keys_file = tmp_path / ("keys-" + secrets.token_hex(6))
        keys_file.write_text(f"# tenants\n{key_a}\n{key_b}\n")
        env["API_KEYS_FILE"] = str(keys_file)
        secret = {"key_b": key_b, "keys_file": str(keys_file)}
    else:
        env["API_KEYS"] = key_a
        origin = "https://app-" + secrets.token_hex(6) + ".example.com"
        env["CORS_ORIGINS"] = origin
        secret = {"origin": origin}
    server = start_server(env)
    needles = server_memory_needles(server, secret)
    for prefix, zygote in (("", "lean"), ("import numpy\n", "full")):
        result = scan_as(server, key_a, needles, prefix)
        assert result["planted"] >= 1, f"the memory scan does not work: {result}"
        assert result["scanned"] > 1 << 20, show(result)
        leaked = {k: v for k, v in result.items() if k in needles and v}
        assert not leaked, f"the {zygote} zygote's run holds the server's configuration: {show(result)}"
