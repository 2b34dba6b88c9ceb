"""Files in and out, and stdin (issue 4): `files` uploaded into the working directory before the
code runs (names checked, count and size capped by MAX_FILES / MAX_FILES_BYTES), `return_files`
(true or glob patterns) answered as `files` (utf-8 or base64, per-file and total caps), and
`stdin` given to the program."""

import base64
import hashlib
import json
import re
import subprocess

import pytest

from conftest import BINARY, code, execute, execute_ok, post_json, show

MIB = 1 << 20


# --- helpers ------------------------------------------------------------------------------------





def assert_400(server, obj, *needles):
    """The request is refused with a 400 whose output contains one of `needles` (when given),
    and the code did not run."""
    status, body = execute(server, obj)
    assert status == 400, show((status, body))
    assert body.get("status") == "Error", show(body)
    output = body.get("output")
    assert isinstance(output, str) and output.strip(), show(body)
    if needles:
        assert any(n in output for n in needles), f"400 output names none of {needles!r}: {output!r}"
    assert "RAN-THE-CODE" not in json.dumps(body), show(body)
    return output


def key_range(key):
    """(min, max) of a configuration key, from `snakebox example`."""
    out = subprocess.run([str(BINARY), "example"], capture_output=True, text=True, timeout=30).stdout
    for block in out.split("\n\n"):
        if re.search(rf"^{key}=", block, re.M):
            m = re.search(r"range: (\d+)\.\.(\d+)", block)
            assert m, f"`snakebox example` gives no range for {key}:\n{block}"
            return int(m.group(1)), int(m.group(2))
    pytest.fail(f"`snakebox example` does not document {key}", pytrace=False)


def returned(body):
    """The answer's `files`, checked for shape and order, as {name: entry}."""
    files = body.get("files")
    assert isinstance(files, list), show(body)
    names = []
    for f in files:
        assert isinstance(f, dict), show(files)
        assert isinstance(f.get("name"), str) and f["name"], show(f)
        assert isinstance(f.get("size"), int) and not isinstance(f.get("size"), bool), show(f)
        if f.get("truncated") is True:
            assert "content" not in f, show(f)
        else:
            assert f.get("truncated", False) is False, show(f)
            assert f.get("encoding") in ("utf-8", "base64"), show(f)
            assert isinstance(f.get("content"), str), show(f)
        names.append(f["name"])
    assert names == sorted(names), f"files not sorted by name: {names}"
    assert len(set(names)) == len(names), f"a file is listed twice: {names}"
    return {f["name"]: f for f in files}


def content(entry):
    """The bytes of a returned (not truncated) file; checks that `size` matches."""
    if entry["encoding"] == "utf-8":
        data = entry["content"].encode("utf-8")
    else:
        data = base64.b64decode(entry["content"], validate=True)
    assert len(data) == entry["size"], show(entry, 500)
    return data


def run_marker():
    return 'print("RAN-THE-CODE")\n'


# --- uploads ------------------------------------------------------------------------------------

def test_csv_uploaded_read_with_pandas_and_result_file_returned(server):
    csv_in = "region,sales\nnorth,10\nsouth,20\nnorth,5\neast,7\n"
    body = execute_ok(server, {
        "code": code('''
            import os
            import pandas as pd
            assert os.getcwd() == "/work", os.getcwd()
            df = pd.read_csv("sales.csv")
            out = df.groupby("region", as_index=False)["sales"].sum().sort_values("region")
            out.to_csv("totals.csv", index=False)
            with open("notes.txt", "w") as f:
                f.write("not a csv")
            print(len(df))
        '''),
        "files": [{"name": "sales.csv", "content": csv_in}],
        "return_files": ["*.csv"],
    })
    assert body["stdout"] == "4\n", show(body)
    files = returned(body)
    assert list(files) == ["totals.csv"], show(body["files"])
    entry = files["totals.csv"]
    assert entry["encoding"] == "utf-8", show(entry)
    assert content(entry).decode() == "region,sales\neast,7\nnorth,15\nsouth,20\n", show(entry)


def test_upload_lands_in_the_working_directory_with_the_exact_bytes(server):
    blob = bytes(range(256)) * 3
    text = "héllo ✓ 日本\nline two\n"
    body = execute_ok(server, {
        "code": code('''
            import hashlib, json, os
            out = {"cwd": os.getcwd()}
            for name in ("blob.bin", "text.txt", "explicit.txt", "empty.txt", "sub/dir/deep.txt"):
                with open(name, "rb") as f:
                    data = f.read()
                out[name] = [len(data), hashlib.sha256(data).hexdigest()]
            out["sub_is_dir"] = os.path.isdir("sub/dir")
            print(json.dumps(out))
        '''),
        "files": [
            {"name": "blob.bin", "content": base64.b64encode(blob).decode(), "encoding": "base64"},
            {"name": "text.txt", "content": text},
            {"name": "explicit.txt", "content": text, "encoding": "utf-8"},
            {"name": "empty.txt", "content": ""},
            {"name": "sub/dir/deep.txt", "content": "deep"},
        ],
    })
    got = json.loads(body["stdout"].strip().splitlines()[-1])

    def digest(b):
        return [len(b), hashlib.sha256(b).hexdigest()]

    assert got["cwd"] == "/work", got
    assert got["blob.bin"] == digest(blob), got
    assert got["text.txt"] == digest(text.encode()), got
    assert got["explicit.txt"] == digest(text.encode()), got
    assert got["empty.txt"] == digest(b""), got
    assert got["sub/dir/deep.txt"] == digest(b"deep"), got
    assert got["sub_is_dir"] is True
    assert "files" not in body, show(body)


def test_uploaded_files_are_writable_by_the_run(server):
    body = execute_ok(server, {
        "code": 'with open("log.txt", "a") as f:\n    f.write("two\\n")\nprint(open("log.txt").read(), end="")\n',
        "files": [{"name": "log.txt", "content": "one\n"}],
    })
    assert body["stdout"] == "one\ntwo\n", show(body)


def test_uploads_do_not_survive_into_the_next_run(server):
    execute_ok(server, {"code": "print(1)", "files": [{"name": "left.txt", "content": "x"}]})
    body = execute_ok(server, {"code": "import os\nprint(sorted(os.listdir('.')))"})
    assert "left.txt" not in body["stdout"], show(body)


def test_files_and_code_with_odd_but_legal_names(server):
    names = ["sp ace.txt", ".hidden", "ünï ✓.txt", "quote'\"s.txt", "star*?[x].txt", "-dash",
             "a.b.c", "x" * 255, "d/" + "y" * 255]
    body = execute_ok(server, {
        "code": code(f'''
            import json
            out = {{}}
            for n in {names!r}:
                with open(n) as f:
                    out[n] = f.read()
            print(json.dumps(out))
        '''),
        "files": [{"name": n, "content": "c:" + n} for n in names],
    })
    got = json.loads(body["stdout"].strip().splitlines()[-1])
    assert got == {n: "c:" + n for n in names}, show(got)


def test_name_of_exactly_1024_bytes_with_255_byte_components_is_accepted(server):
    name = "/".join(["a" * 255, "b" * 255, "c" * 255, "d" * 254, "e"])
    assert len(name.encode()) == 1024
    body = execute_ok(server, {"code": f"print(open({name!r}).read())",
                               "files": [{"name": name, "content": "deep"}]})
    assert body["stdout"] == "deep\n", show(body)


# --- invalid uploads ----------------------------------------------------------------------------

LONG_COMPONENT = "toolong" + "x" * 249                      # 256 bytes
LONG_MULTIBYTE = "é" * 128                                   # 128 characters, 256 bytes
LONG_TOTAL = "/".join(f"t{i}" + "y" * 198 for i in range(6))  # 1205 bytes, components of 200

BAD_ENTRIES = [
    # (id, files list, needles: the 400 output names one of them)
    ("absolute", [{"name": "/etc/x", "content": "x"}], ("/etc/x",)),
    ("absolute-work", [{"name": "/work/a.txt", "content": "x"}], ("/work/a.txt",)),
    ("root", [{"name": "/", "content": "x"}], ("files", "name")),
    ("dotdot", [{"name": "..", "content": "x"}], ("..",)),
    ("dotdot-first", [{"name": "../x.txt", "content": "x"}], ("../x.txt",)),
    ("dotdot-middle", [{"name": "a/../b.txt", "content": "x"}], ("a/../b.txt",)),
    ("dotdot-last", [{"name": "a/..", "content": "x"}], ("a/..",)),
    ("dotdot-escape", [{"name": "sub/../../x.txt", "content": "x"}], ("sub/../../x.txt",)),
    ("dot", [{"name": ".", "content": "x"}], ("files", "name")),
    ("dot-first", [{"name": "./a.txt", "content": "x"}], ("./a.txt",)),
    ("dot-middle", [{"name": "a/./b.txt", "content": "x"}], ("a/./b.txt",)),
    ("dot-last", [{"name": "a/.", "content": "x"}], ("a/.",)),
    ("empty", [{"name": "", "content": "x"}], ("files", "name")),
    ("double-slash", [{"name": "a//b.txt", "content": "x"}], ("a//b.txt",)),
    ("trailing-slash", [{"name": "dir/", "content": "x"}], ("dir/",)),
    ("nul", [{"name": "nul\u0000x.txt", "content": "x"}], ("nul",)),
    ("long-component", [{"name": LONG_COMPONENT, "content": "x"}], ("toolong",)),
    ("long-component-bytes", [{"name": LONG_MULTIBYTE, "content": "x"}], ("ééééé", "files", "name")),
    ("long-total", [{"name": LONG_TOTAL, "content": "x"}], ("t0yyyyyy",)),
    ("duplicate", [{"name": "dup.txt", "content": "1"}, {"name": "dup.txt", "content": "2"}],
     ("dup.txt",)),
    ("file-and-dir", [{"name": "clash", "content": "1"}, {"name": "clash/b.txt", "content": "2"}],
     ("clash",)),
    ("dir-and-file", [{"name": "clash/b.txt", "content": "1"}, {"name": "clash", "content": "2"}],
     ("clash",)),
    ("bad-base64", [{"name": "b64.bin", "content": "!!!not base64!!!", "encoding": "base64"}],
     ("b64.bin",)),
    ("bad-base64-alphabet", [{"name": "b64b.bin", "content": "@@@@", "encoding": "base64"}],
     ("b64b.bin",)),
    ("unknown-encoding", [{"name": "enc.txt", "content": "x", "encoding": "latin-1"}], ("enc.txt",)),
    ("encoding-not-string", [{"name": "enc2.txt", "content": "x", "encoding": 5}], ("enc2.txt",)),
    ("content-number", [{"name": "c.txt", "content": 5}], ("c.txt",)),
    ("content-null", [{"name": "c2.txt", "content": None}], ("c2.txt",)),
    ("content-list", [{"name": "c3.txt", "content": ["x"]}], ("c3.txt",)),
    ("unknown-key", [{"name": "k.txt", "content": "x", "mode": "0755"}], ("k.txt",)),
    ("name-number", [{"name": 5, "content": "x"}], ("files", "name")),
    ("name-missing", [{"content": "x"}], ("files", "name")),
    ("entry-string", ["a.txt"], ("files",)),
    ("entry-number", [5], ("files",)),
    ("entry-null", [None], ("files",)),
    ("entry-list", [["a.txt", "x"]], ("files",)),
    ("second-entry-bad", [{"name": "ok.txt", "content": "x"}, {"name": "../bad.txt", "content": "x"}],
     ("../bad.txt",)),
]


@pytest.mark.parametrize("files,needles", [(f, n) for _, f, n in BAD_ENTRIES],
                         ids=[i for i, _, _ in BAD_ENTRIES])
def test_invalid_file_entry_is_a_400_naming_the_file(server, files, needles):
    assert_400(server, {"code": run_marker(), "files": files}, *needles)


@pytest.mark.parametrize("value", ["a.txt", {"name": "a.txt", "content": "x"}, 5, True],
                         ids=["string", "object", "number", "bool"])
def test_files_field_that_is_not_a_list_is_a_400(server, value):
    assert_400(server, {"code": run_marker(), "files": value}, "files")


def test_max_files_default_is_64(server):
    files = [{"name": f"f{i:02d}.txt", "content": str(i)} for i in range(64)]
    body = execute_ok(server, {"code": "import os\nprint(len(os.listdir('.')))", "files": files})
    assert body["stdout"] == "64\n", show(body)
    files.append({"name": "f64.txt", "content": "64"})
    output = assert_400(server, {"code": run_marker(), "files": files})
    assert re.search(r"MAX_FILES(?!_)", output), f"400 does not name MAX_FILES: {output!r}"


def test_max_files_setting(start_server):
    srv = start_server({"MAX_FILES": "3"})
    files = [{"name": f"f{i}.txt", "content": str(i)} for i in range(3)]
    execute_ok(srv, {"code": "print(1)", "files": files})
    files.append({"name": "f3.txt", "content": "3"})
    output = assert_400(srv, {"code": run_marker(), "files": files})
    assert re.search(r"MAX_FILES(?!_)", output), f"400 does not name MAX_FILES: {output!r}"


def test_max_files_bytes_counts_decoded_bytes(start_server):
    low, high = key_range("MAX_FILES_BYTES")
    cap = max(65536, low)
    assert cap <= min(high, MIB), (low, high)
    srv = start_server({"MAX_FILES_BYTES": str(cap), "MAX_REQUEST_BYTES": "4194304"})
    read = "import os\nprint(sum(os.path.getsize(n) for n in os.listdir('.')))"
    # Exactly the cap, sent as base64 (a third longer than the cap on the wire): accepted.
    exact = base64.b64encode(b"\x07" * cap).decode()
    body = execute_ok(srv, {"code": read,
                            "files": [{"name": "a.bin", "content": exact, "encoding": "base64"}]})
    assert body["stdout"] == f"{cap}\n", show(body)
    # One byte over, in one file or in two.
    over = base64.b64encode(b"\x07" * (cap + 1)).decode()
    output = assert_400(srv, {"code": run_marker(),
                              "files": [{"name": "a.bin", "content": over, "encoding": "base64"}]})
    assert "MAX_FILES_BYTES" in output, output
    half = cap // 2
    output = assert_400(srv, {"code": run_marker(), "files": [
        {"name": "a.txt", "content": "a" * half},
        {"name": "b.txt", "content": "b" * (cap - half + 1)}]})
    assert "MAX_FILES_BYTES" in output, output


def test_max_files_bytes_default_is_8_mib(start_server):
    srv = start_server({"MAX_REQUEST_BYTES": str(16 * MIB), "TMP_SIZE_MB": "32"})
    read = "import os\nprint(sum(os.path.getsize(n) for n in os.listdir('.')))"
    body = execute_ok(srv, {"code": read, "files": [{"name": "a.txt", "content": "a" * (4 * MIB)},
                                                    {"name": "b.txt", "content": "b" * (4 * MIB)}]},
                      timeout=120)
    assert body["stdout"] == f"{8 * MIB}\n", show(body)
    output = assert_400(srv, {"code": run_marker(),
                              "files": [{"name": "a.txt", "content": "a" * (8 * MIB + 1)}]})
    assert "MAX_FILES_BYTES" in output, output


def test_request_size_limit_still_applies_to_files(server):
    # The shared server's MAX_REQUEST_BYTES is 65536.
    r = post_json(server, {"code": run_marker(), "files": [{"name": "a.txt", "content": "a" * 70000}]})
    assert r.status == 413, show(r)


# --- return_files -------------------------------------------------------------------------------

def test_return_files_true_returns_created_files_in_subdirectories(server):
    body = execute_ok(server, {"code": code('''
        import os
        os.makedirs("out/deep/er")
        os.makedirs("empty_dir")
        with open("top.txt", "w") as f:
            f.write("top")
        with open("out/a.txt", "w") as f:
            f.write("A")
        with open("out/deep/er/b.txt", "w") as f:
            f.write("B")
        open("zero.txt", "w").close()
        with open("/tmp/outside.txt", "w") as f:
            f.write("not in the working directory")
    '''), "return_files": True})
    files = returned(body)
    assert list(files) == ["out/a.txt", "out/deep/er/b.txt", "top.txt", "zero.txt"], show(body["files"])
    assert content(files["top.txt"]) == b"top"
    assert content(files["out/a.txt"]) == b"A"
    assert content(files["out/deep/er/b.txt"]) == b"B"
    assert content(files["zero.txt"]) == b""


def test_unchanged_uploads_are_not_returned_changed_ones_are(server):
    body = execute_ok(server, {
        "code": code('''
            import os
            with open("edit.txt", "a") as f:
                f.write("+new")
            with open("rewrite.txt", "w") as f:
                f.write("replaced entirely")
            os.remove("gone.txt")
            print(open("keep.txt").read())
        '''),
        "files": [{"name": "keep.txt", "content": "keep"},
                  {"name": "sub/keep2.txt", "content": "keep2"},
                  {"name": "edit.txt", "content": "old"},
                  {"name": "rewrite.txt", "content": "short"},
                  {"name": "gone.txt", "content": "bye"}],
        "return_files": True,
    })
    assert body["stdout"] == "keep\n", show(body)
    files = returned(body)
    assert list(files) == ["edit.txt", "rewrite.txt"], show(body["files"])
    assert content(files["edit.txt"]) == b"old+new"
    assert content(files["rewrite.txt"]) == b"replaced entirely"


def test_upload_rewritten_with_the_same_size_or_emptied_is_returned(server):
    body = execute_ok(server, {
        "code": code('''
            import os
            with open("same.txt", "w") as f:
                f.write("bbbb")
            open("emptied.txt", "w").close()
            with open("temp.txt", "w") as f:
                f.write("short-lived")
            os.remove("temp.txt")
        '''),
        "files": [{"name": "same.txt", "content": "aaaa"},
                  {"name": "emptied.txt", "content": "was not empty"}],
        "return_files": True,
    })
    files = returned(body)
    assert list(files) == ["emptied.txt", "same.txt"], show(body["files"])
    assert content(files["same.txt"]) == b"bbbb"
    assert content(files["emptied.txt"]) == b""


def test_binary_file_is_returned_as_base64(server):
    body = execute_ok(server, {"code": code('''
        with open("all.bin", "wb") as f:
            f.write(bytes(range(256)))
        with open("bad-utf8.txt", "wb") as f:
            f.write(b"abc\\xff\\xfedef")
    '''), "return_files": True})
    files = returned(body)
    assert list(files) == ["all.bin", "bad-utf8.txt"], show(body["files"])
    for name, expected in (("all.bin", bytes(range(256))), ("bad-utf8.txt", b"abc\xff\xfedef")):
        assert files[name]["encoding"] == "base64", show(files[name])
        assert files[name]["size"] == len(expected)
        assert base64.b64decode(files[name]["content"], validate=True) == expected


def test_utf8_text_file_is_returned_as_utf8(server):
    text = "naïve café ✓ 日本語 🐍\nsecond line\n"
    body = execute_ok(server, {"code": code(f'''
        with open("text.txt", "w", encoding="utf-8") as f:
            f.write({text!r})
    '''), "return_files": ["text.txt"]})
    files = returned(body)
    assert list(files) == ["text.txt"], show(body["files"])
    entry = files["text.txt"]
    assert entry["encoding"] == "utf-8", show(entry)
    assert entry["content"] == text
    assert entry["size"] == len(text.encode("utf-8"))


def test_glob_patterns_select_files_and_a_saved_figure_is_a_valid_png(server):
    body = execute_ok(server, {"code": code('''
        import os
        import matplotlib.pyplot as plt
        os.makedirs("out")
        plt.figure(figsize=(3, 2))
        plt.plot([1, 2, 3])
        plt.savefig("out/plot.png")
        plt.savefig("top.png")
        for name in ("a.csv", "b.txt", "out/c.txt"):
            with open(name, "w") as f:
                f.write(name)
    '''), "return_files": ["*.csv", "out/*.png"]})
    files = returned(body)
    assert list(files) == ["a.csv", "out/plot.png"], show(body["files"])
    assert content(files["a.csv"]) == b"a.csv"
    png = files["out/plot.png"]
    assert png["encoding"] == "base64", show(png, 300)
    data = content(png)
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:16]
    assert data[12:16] == b"IHDR" and data[16:24] == (300).to_bytes(4, "big") + (200).to_bytes(4, "big")


def test_empty_pattern_list_returns_an_empty_list(server):
    body = execute_ok(server, {"code": "open('a.txt', 'w').write('a')", "return_files": []})
    assert body.get("files") == [], show(body)


def test_pattern_matching_nothing_returns_an_empty_list(server):
    body = execute_ok(server, {"code": "open('a.txt', 'w').write('a')", "return_files": ["*.csv"]})
    assert body.get("files") == [], show(body)


@pytest.mark.parametrize("extra", [{}, {"return_files": False}], ids=["absent", "false"])
def test_no_files_field_without_return_files(server, extra):
    body = execute_ok(server, {"code": "open('a.txt', 'w').write('a')", **extra})
    assert "files" not in body, show(body)


@pytest.mark.parametrize("value", ["*.csv", 1, {"pattern": "*"}], ids=["string", "number", "object"])
def test_return_files_of_another_type_is_a_400(server, value):
    assert_400(server, {"code": run_marker(), "return_files": value}, "return_files")


def test_return_files_comes_back_for_a_run_that_fails(server):
    status, body = execute(server, {"code": "open('partial.txt', 'w').write('p')\n1/0\n",
                                    "return_files": True})
    assert status == 200 and body["status"] == "Error", show(body)
    files = returned(body)
    assert list(files) == ["partial.txt"] and content(files["partial.txt"]) == b"p", show(body)


def test_per_file_cap_lists_a_truncated_entry(start_server):
    low, high = key_range("MAX_RETURN_FILE_BYTES")
    cap = max(1024, low)
    assert cap <= min(high, MIB), (low, high)
    srv = start_server({"MAX_RETURN_FILE_BYTES": str(cap)})
    body = execute_ok(srv, {"code": code(f'''
        with open("at_cap.txt", "w") as f:
            f.write("a" * {cap})
        with open("big.txt", "w") as f:
            f.write("b" * {cap + 1})
        with open("big.bin", "wb") as f:
            f.write(bytes(range(256)) * {cap // 256 + 1})
    '''), "return_files": True})
    files = returned(body)
    assert list(files) == ["at_cap.txt", "big.bin", "big.txt"], show(body["files"])
    assert content(files["at_cap.txt"]) == b"a" * cap
    for name, size in (("big.txt", cap + 1), ("big.bin", (cap // 256 + 1) * 256)):
        entry = files[name]
        assert entry.get("truncated") is True, show(entry, 300)
        assert entry["size"] == size, show(entry, 300)
        assert "content" not in entry, show(entry, 300)


def test_default_per_file_cap_is_1_mib(server):
    body = execute_ok(server, {"code": code(f'''
        with open("exact.txt", "w") as f:
            f.write("e" * {MIB})
        with open("over.txt", "w") as f:
            f.write("o" * {MIB + 1})
    '''), "return_files": True}, timeout=60)
    files = returned(body)
    assert list(files) == ["exact.txt", "over.txt"], show(body["files"], 500)
    assert content(files["exact.txt"]) == b"e" * MIB
    assert files["over.txt"].get("truncated") is True and files["over.txt"]["size"] == MIB + 1


def test_total_cap_truncates_the_files_past_it(start_server):
    low_t, high_t = key_range("MAX_RETURN_BYTES")
    low_f, high_f = key_range("MAX_RETURN_FILE_BYTES")
    cap = max(4096, low_t, low_f)
    assert cap <= min(high_t, high_f, MIB), (low_t, high_t, low_f, high_f)
    srv = start_server({"MAX_RETURN_BYTES": str(cap), "MAX_RETURN_FILE_BYTES": str(cap)})
    part = cap * 2 // 5
    body = execute_ok(srv, {"code": code(f'''
        for name in ("a.txt", "b.txt", "c.txt"):
            with open(name, "w") as f:
                f.write(name[0] * {part})
    '''), "return_files": True})
    files = returned(body)
    assert list(files) == ["a.txt", "b.txt", "c.txt"], show(body["files"])
    cut = [n for n, e in files.items() if e.get("truncated") is True]
    assert len(cut) == 1, show(body["files"])
    kept = 0
    for name, entry in files.items():
        assert entry["size"] == part, show(entry, 300)
        if name not in cut:
            assert content(entry) == name[0].encode() * part
            kept += part
    assert kept <= cap


def test_default_total_cap_is_8_mib(server):
    size = 1_000_000  # nine of them: 8 fit in 8 MiB, the ninth does not
    body = execute_ok(server, {"code": code(f'''
        for i in range(9):
            with open(f"part{{i}}.txt", "w") as f:
                f.write(str(i) * {size})
    '''), "return_files": True}, timeout=120)
    files = returned(body)
    assert list(files) == [f"part{i}.txt" for i in range(9)], show(list(files))
    cut = [n for n, e in files.items() if e.get("truncated") is True]
    assert len(cut) == 1, cut
    assert all(e["size"] == size for e in files.values())


def test_invalid_utf8_that_looks_almost_valid_is_returned_as_base64(server):
    samples = {
        "surrogate.txt": b"ab\xed\xa0\x80cd",         # UTF-16 surrogate in UTF-8 form
        "overlong.txt": b"ab\xc0\x80cd",               # overlong NUL
        "overlong3.txt": b"ab\xe0\x80\xafcd",          # overlong "/"
        "too-big.txt": b"ab\xf4\x90\x80\x80cd",        # above U+10FFFF
        "cut.txt": b"abc\xe2\x9c",                     # a character cut at the end
        "lone-continuation.txt": b"ab\x80cd",
    }
    body = execute_ok(server, {"code": code(f'''
        for name, data in {samples!r}.items():
            with open(name, "wb") as f:
                f.write(data)
    '''), "return_files": True})
    files = returned(body)
    assert sorted(files) == sorted(samples), show(body["files"])
    for name, data in samples.items():
        assert files[name]["encoding"] == "base64", show(files[name])
        assert content(files[name]) == data, name


@pytest.mark.parametrize("data", [b"a\x01b\x1b[0m\x7f\tc\r\n", b"a\x00b", b"text\x00\x00\x00"],
                         ids=["control-bytes", "nul", "trailing-nuls"])
def test_text_with_nul_and_control_bytes_round_trips(server, data):
    body = execute_ok(server, {"code": code(f'''
        with open("ctl.txt", "wb") as f:
            f.write({data!r})
    '''), "return_files": True})
    files = returned(body)
    assert list(files) == ["ctl.txt"], show(body["files"])
    assert content(files["ctl.txt"]) == data


def test_upload_with_nul_in_utf8_content_keeps_every_byte(server):
    body = execute_ok(server, {"code": "print(repr(open('n.txt', 'rb').read()))",
                               "files": [{"name": "n.txt", "content": "a\u0000b\u0000"}]})
    assert body["stdout"] == repr(b"a\x00b\x00") + "\n", show(body)


def test_files_written_next_to_uploads_in_their_directory(server):
    body = execute_ok(server, {
        "code": code('''
            import pandas as pd
            df = pd.read_csv("data/in.csv")
            df.assign(double=df.v * 2).to_csv("data/out.csv", index=False)
        '''),
        "files": [{"name": "data/in.csv", "content": "v\n1\n2\n"}],
        "return_files": ["data/*"],
    })
    files = returned(body)
    assert list(files) == ["data/out.csv"], show(body["files"])
    assert content(files["data/out.csv"]) == b"v,double\n1,2\n2,4\n"


# --- stdin --------------------------------------------------------------------------------------

def test_stdin_read_by_input_twice(server):
    body = execute_ok(server, {"code": code('''
        name = input()
        age = int(input("age? "))
        print(f"{name} is {age}")
        try:
            input()
        except EOFError:
            print("then EOF")
    '''), "stdin": "alice\n42\n"})
    assert body["stdout"] == "age? alice is 42\nthen EOF\n", show(body)


def test_stdin_read_all_at_once(server):
    text = "héllo ✓\nno newline at the end"
    body = execute_ok(server, {"code": "import sys\ndata = sys.stdin.read()\nprint(repr(data))",
                               "stdin": text})
    assert body["stdout"] == repr(text) + "\n", show(body)


def test_stdin_is_seen_by_a_subprocess(server):
    body = execute_ok(server, {"code": code('''
        import subprocess
        r = subprocess.run(["cat"], capture_output=True, timeout=10)
        print(r.returncode, repr(r.stdout))
    '''), "stdin": "through cat\nline 2\n"})
    assert body["stdout"] == "0 " + repr(b"through cat\nline 2\n") + "\n", show(body)


def test_without_stdin_input_raises_eof(server):
    body = execute_ok(server, {"code": code('''
        import sys
        try:
            input()
        except EOFError:
            print("EOF")
        print(repr(sys.stdin.read()))
    ''')})
    assert body["stdout"] == "EOF\n''\n", show(body)


def test_empty_stdin_is_eof(server):
    body = execute_ok(server, {"code": "try:\n    input()\nexcept EOFError:\n    print('EOF')\n",
                               "stdin": ""})
    assert body["stdout"] == "EOF\n", show(body)


def test_large_stdin_is_read_whole_and_unread_stdin_does_not_hang(start_server):
    srv = start_server({"MAX_REQUEST_BYTES": "4194304"})
    data = "".join(f"{i:07d}\n" for i in range(2 * MIB // 8))  # 2 MiB, far past a pipe buffer
    body = execute_ok(srv, {"code": code('''
        import hashlib, sys
        data = sys.stdin.buffer.read()
        print(len(data), hashlib.sha256(data).hexdigest())
    '''), "stdin": data}, timeout=60)
    expected = data.encode()
    assert body["stdout"] == f"{len(expected)} {hashlib.sha256(expected).hexdigest()}\n", show(body)
    body = execute_ok(srv, {"code": "print('ignored stdin')", "stdin": data}, timeout=60)
    assert body["stdout"] == "ignored stdin\n", show(body)


def test_stdin_with_nul_and_unicode_is_given_whole(server):
    text = "a\u0000b ✓ 🐍\nend"
    body = execute_ok(server, {"code": "import sys\nprint(sys.stdin.buffer.read().hex())",
                               "stdin": text})
    assert body["stdout"] == text.encode("utf-8").hex() + "\n", show(body)


@pytest.mark.parametrize("value", [1, ["a"], {"a": "b"}, True], ids=["number", "list", "object", "bool"])
def test_stdin_that_is_not_a_string_is_a_400(server, value):
    assert_400(server, {"code": run_marker(), "stdin": value}, "stdin")
