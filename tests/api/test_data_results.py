"""Data-analysis results in the answer (issue 4): matplotlib figures as images (PNG by default,
SVG on request, capped by MAX_IMAGES / MAX_IMAGE_BYTES with the rest counted in images_dropped),
and the value of a last expression as `result` ({"text/plain", "text/html"}), capped by
MAX_RESULT_BYTES and never added to output or stdout."""

import base64
import re
import struct
import subprocess
import xml.etree.ElementTree as ET
import zlib

import pytest

from conftest import BINARY, code, execute, execute_ok, show

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OLD_FIELDS = {"status", "output", "stdout", "stderr", "exit_code", "signal", "error", "truncated",
              "duration_ms", "duration_us", "cpu_ms", "memory_peak_bytes"}


# --- helpers ------------------------------------------------------------------------------------





def key_range(key):
    """(min, max) of a configuration key, read from `snakebox example` (which documents every
    key with `range: A..B`). Fails the test if the key is not documented."""
    out = subprocess.run([str(BINARY), "example"], capture_output=True, text=True, timeout=30).stdout
    for block in out.split("\n\n"):
        if re.search(rf"^{key}=", block, re.M):
            m = re.search(r"range: (\d+)\.\.(\d+)", block)
            assert m, f"`snakebox example` gives no range for {key}:\n{block}"
            return int(m.group(1)), int(m.group(2))
    pytest.fail(f"`snakebox example` does not document {key}", pytrace=False)


def png_chunks(data):
    assert data[:8] == PNG_SIGNATURE, f"not a PNG: starts with {data[:16]!r}"
    pos, chunks = 8, []
    while pos < len(data):
        assert pos + 12 <= len(data), "truncated PNG chunk header"
        length, ctype = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        assert len(body) == length, f"truncated PNG chunk {ctype!r}"
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(ctype + body) == crc, f"bad CRC in PNG chunk {ctype!r}"
        chunks.append((ctype, body))
        pos += 12 + length
        if ctype == b"IEND":
            break
    assert chunks and chunks[0][0] == b"IHDR", "PNG does not start with IHDR"
    assert chunks[-1][0] == b"IEND", "PNG does not end with IEND"
    return chunks


def decode_png(data):
    """Checks the signature, the chunks, IHDR and that the IDAT stream inflates to exactly the
    scanlines IHDR announces. Returns (width, height, ihdr_fields, raw_scanlines)."""
    chunks = png_chunks(data)
    width, height, depth, color, _comp, _filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert width > 0 and height > 0, (width, height)
    idat = b"".join(b for t, b in chunks if t == b"IDAT")
    assert idat, "PNG without IDAT"
    raw = zlib.decompress(idat)
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    if interlace == 0:
        row = (width * channels * depth + 7) // 8
        assert len(raw) == height * (1 + row), (len(raw), width, height, channels, depth)
    return width, height, (depth, color, interlace), raw


def unfilter(raw, width, height, bpp):
    """PNG scanline unfiltering (8-bit samples); returns the list of rows as bytearrays."""
    stride = width * bpp
    rows, prev, pos = [], bytearray(stride), 0
    for _ in range(height):
        ftype = raw[pos]
        line = bytearray(raw[pos + 1:pos + 1 + stride])
        pos += 1 + stride
        if ftype == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif ftype == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 0xFF
        elif ftype == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        else:
            assert ftype == 0, f"unknown PNG filter type {ftype}"
        rows.append(line)
        prev = line
    return rows


def check_image(img, fmt="png"):
    """Checks one `images` entry; returns (width, height, decoded bytes)."""
    assert isinstance(img, dict), show(img)
    assert img.get("format") == fmt, show({k: v for k, v in img.items() if k != "data"})
    for key in ("width", "height"):
        assert isinstance(img.get(key), int) and not isinstance(img.get(key), bool), show(
            {k: v for k, v in img.items() if k != "data"})
        assert img[key] > 0
    assert isinstance(img.get("data"), str) and img["data"], "image without data"
    data = base64.b64decode(img["data"], validate=True)
    if fmt == "png":
        w, h, _, _ = decode_png(data)
        assert (w, h) == (img["width"], img["height"]), (
            f"IHDR says {w}x{h}, the answer says {img['width']}x{img['height']}")
    else:
        root = ET.fromstring(data)
        assert root.tag in ("svg", "{http://www.w3.org/2000/svg}svg"), root.tag
    return img["width"], img["height"], data


def sizes(body):
    return [(i["width"], i["height"]) for i in body["images"]]


def assert_images_fields(body):
    assert isinstance(body.get("images"), list), show(body)
    dropped = body.get("images_dropped")
    assert isinstance(dropped, int) and not isinstance(dropped, bool), show(body)


# --- images -------------------------------------------------------------------------------------

def test_bar_chart_shown_comes_back_as_a_valid_png_of_the_figure_size(server):
    body = execute_ok(server, {"code": code('''
        import matplotlib.pyplot as plt
        plt.figure(figsize=(4, 3))
        plt.bar(["a", "b", "c"], [3, 7, 5], color="red")
        plt.title("sales")
        plt.show()
        print("done")
    ''')})
    assert body["stdout"] == "done\n", show(body)
    assert_images_fields(body)
    assert len(body["images"]) == 1, show(body)
    assert body["images_dropped"] == 0, show(body)
    w, h, data = check_image(body["images"][0])
    assert (w, h) == (400, 300), (w, h)
    # The bars are there: decode the pixels and look for pure red ones.
    width, height, (depth, color, interlace), raw = decode_png(data)
    assert depth == 8 and interlace == 0 and color in (2, 6), (depth, color, interlace)
    bpp = 4 if color == 6 else 3
    rows = unfilter(raw, width, height, bpp)
    red = sum(1 for row in rows for x in range(0, len(row), bpp)
              if row[x] > 200 and row[x + 1] < 60 and row[x + 2] < 60)
    assert red > 1000, f"only {red} red pixels in a bar chart of red bars"


def test_pandas_plot_without_show_is_returned(server):
    body = execute_ok(server, {"code": code('''
        import pandas as pd
        df = pd.DataFrame({"x": [1, 2, 3, 4], "y": [4, 1, 3, 2]})
        ax = df.plot(x="x", y="y", figsize=(5, 4))
    ''')})
    assert_images_fields(body)
    assert len(body["images"]) == 1, show(body)
    assert check_image(body["images"][0])[:2] == (500, 400)
    assert body["images_dropped"] == 0


def test_pandas_plot_kinds_each_return_one_image(server):
    body = execute_ok(server, {"code": code('''
        import pandas as pd
        import matplotlib.pyplot as plt
        df = pd.DataFrame({"cat": ["a", "b", "c"], "v": [3, 1, 2]})
        df.plot.bar(x="cat", y="v", figsize=(3, 2))
        plt.show()
        df["v"].plot.hist(figsize=(2, 3))
    ''')})
    assert_images_fields(body)
    assert [check_image(i)[:2] for i in body["images"]] == [(300, 200), (200, 300)], show(body)


def test_two_figures_come_back_in_creation_order(server):
    body = execute_ok(server, {"code": code('''
        import matplotlib.pyplot as plt
        f1 = plt.figure(figsize=(4, 3))
        plt.plot([1, 2, 3])
        f2 = plt.figure(figsize=(2, 5))
        plt.plot([3, 2, 1])
    ''')})
    assert_images_fields(body)
    assert [check_image(i)[:2] for i in body["images"]] == [(400, 300), (200, 500)], show(body)
    assert body["images_dropped"] == 0


def test_creation_order_is_not_figure_number_order(server):
    body = execute_ok(server, {"code": code('''
        import matplotlib.pyplot as plt
        plt.figure(7, figsize=(2, 2))
        plt.plot([1, 2])
        plt.figure(3, figsize=(3, 2))
        plt.plot([2, 1])
        plt.show()
        plt.figure(1, figsize=(4, 2))
        plt.plot([1, 1])
    ''')})
    assert_images_fields(body)
    assert [check_image(i)[:2] for i in body["images"]] == [(200, 200), (300, 200), (400, 200)], \
        show(body)


def test_shown_figure_that_stays_open_is_returned_once(server):
    body = execute_ok(server, {"code": code('''
        import matplotlib.pyplot as plt
        fig = plt.figure(figsize=(4, 3))
        plt.plot([1, 2, 3])
        plt.show()
        fig.set_size_inches(2, 2)
    ''')})
    assert_images_fields(body)
    assert len(body["images"]) == 1, show(sizes(body))
    # Captured at the first show.
    assert check_image(body["images"][0])[:2] == (400, 300)


def test_figure_shown_twice_is_returned_once(server):
    body = execute_ok(server, {"code": code('''
        import matplotlib.pyplot as plt
        plt.figure(figsize=(3, 2))
        plt.plot([1, 2, 3])
        plt.show()
        plt.show()
    ''')})
    assert_images_fields(body)
    assert [check_image(i)[:2] for i in body["images"]] == [(300, 200)], show(sizes(body))
    assert body["images_dropped"] == 0


def test_figure_closed_without_show_is_not_returned(server):
    body = execute_ok(server, {"code": code('''
        import matplotlib.pyplot as plt
        gone = plt.figure(figsize=(2, 2))
        plt.plot([1, 2])
        plt.close(gone)
        kept = plt.figure(figsize=(3, 2))
        plt.plot([2, 1])
    ''')})
    assert_images_fields(body)
    assert [check_image(i)[:2] for i in body["images"]] == [(300, 200)], show(body)


def test_shown_then_closed_figures_are_all_returned(server):
    body = execute_ok(server, {"code": code('''
        import matplotlib.pyplot as plt
        for i in range(3):
            plt.figure(figsize=(2 + i, 2))
            plt.plot([i, i + 1])
            plt.show()
            plt.close("all")
    ''')})
    assert_images_fields(body)
    assert [check_image(i)[:2] for i in body["images"]] == [(200, 200), (300, 200), (400, 200)], \
        show(body)


def test_object_oriented_subplots_figure_is_returned(server):
    body = execute_ok(server, {"code": code('''
        import matplotlib.pyplot as plt
        import numpy as np
        fig, axes = plt.subplots(1, 2, figsize=(6, 2.5), dpi=50)
        axes[0].scatter(np.arange(10), np.arange(10) ** 2)
        axes[1].hist(np.random.default_rng(0).normal(size=200))
    ''')})
    assert_images_fields(body)
    assert [check_image(i)[:2] for i in body["images"]] == [(300, 125)], show(body)


def test_image_format_svg(server):
    body = execute_ok(server, {"code": code('''
        import matplotlib.pyplot as plt
        plt.figure(figsize=(4, 3))
        plt.plot([1, 3, 2])
        plt.show()
    '''), "image_format": "svg"})
    assert_images_fields(body)
    assert len(body["images"]) == 1, show(body)
    check_image(body["images"][0], fmt="svg")


def test_image_format_png_explicitly(server):
    body = execute_ok(server, {"code": code('''
        import matplotlib.pyplot as plt
        plt.figure(figsize=(3, 3))
        plt.plot([1, 3, 2])
    '''), "image_format": "png"})
    assert_images_fields(body)
    assert [check_image(i)[:2] for i in body["images"]] == [(300, 300)], show(body)


@pytest.mark.parametrize("src", [
    'print("no figure")\n',
    'import numpy as np\nprint(np.arange(3).sum())\n',
    'import matplotlib.pyplot as plt\nprint("imported only")\n',
], ids=["lean", "numpy", "pyplot-imported"])
def test_no_figure_means_empty_images_and_every_old_field_unchanged(server, src):
    body = execute_ok(server, {"code": src})
    assert OLD_FIELDS <= set(body), OLD_FIELDS - set(body)
    assert body["images"] == [], show(body)
    assert body["images_dropped"] == 0, show(body)
    assert "files" not in body, show(body)
    assert body["error"] is None and body["exit_code"] == 0 and body["signal"] is None
    assert body["stderr"] == "", show(body)


def test_images_come_back_for_a_run_that_fails(server):
    status, body = execute(server, {"code": code('''
        import matplotlib.pyplot as plt
        plt.figure(figsize=(2, 2))
        plt.plot([1, 2])
        raise ValueError("after the plot")
    ''')})
    assert status == 200 and body["status"] == "Error", show(body)
    assert body["error"]["type"] == "ValueError", show(body)
    assert_images_fields(body)
    assert [check_image(i)[:2] for i in body["images"]] == [(200, 200)], show(body)


def test_max_images_caps_and_counts_the_dropped(start_server):
    srv = start_server({"MAX_IMAGES": "2"})
    body = execute_ok(srv, {"code": code('''
        import matplotlib.pyplot as plt
        for i in range(3):
            plt.figure(figsize=(2 + i, 2))
            plt.plot([i, i + 1])
    ''')})
    assert_images_fields(body)
    assert [check_image(i)[:2] for i in body["images"]] == [(200, 200), (300, 200)], show(body)
    assert body["images_dropped"] == 1, show(body)


def test_default_image_cap_is_sixteen(server):
    body = execute_ok(server, {"code": code('''
        import matplotlib.pyplot as plt
        for i in range(18):
            plt.figure(figsize=(1, 1), dpi=20)
            plt.plot([0, i])
    ''')})
    assert_images_fields(body)
    assert len(body["images"]) == 16, show(sizes(body))
    assert body["images_dropped"] == 2, show(body["images_dropped"])
    for img in body["images"]:
        assert check_image(img)[:2] == (20, 20)


# --- the last expression's value ----------------------------------------------------------------

def test_dataframe_result_has_text_and_html(server):
    body = execute_ok(server, {"code": code('''
        import pandas as pd
        df = pd.DataFrame({"city": ["Oslo", "Lima"], "temp": [3, 19]})
        print(repr(df))
        df
    ''')})
    result = body.get("result")
    assert isinstance(result, dict), show(body)
    assert result.get("text/plain") == body["stdout"].rstrip("\n"), show(result)
    html = result.get("text/html")
    assert isinstance(html, str) and "<table" in html, show(result)
    assert "Oslo" in html and "temp" in html, show(result)
    assert body["images"] == []


@pytest.mark.parametrize("src,text", [
    ("1+1", "2"),
    ("x = 41\nx + 1\n", "42"),
    ("'abc'", "'abc'"),
    ("[1, 'two', None]", "[1, 'two', None]"),
    ("import math\nmath.pi\n", "3.141592653589793"),
    ("import numpy as np\nnp.arange(3)\n", "array([0, 1, 2])"),
    ("def f():\n    return {'k': 1}\n\nf()\n", "{'k': 1}"),
    ("1 + 1\n# a trailing comment\n\n", "2"),
    ("x = 1; x + 1", "2"),
    ("(1 +\n 2)\n", "3"),
    ("__name__", "'__main__'"),
    ("import sys\nsys.argv[0] == sys.argv[0]\n", "True"),
], ids=["sum", "after-assignment", "str", "list", "stdlib", "numpy", "call", "trailing-comment",
        "semicolon-statements", "multi-line", "main", "bool"])
def test_expression_result_is_its_repr_and_has_no_html(server, src, text):
    body = execute_ok(server, {"code": src})
    assert body.get("result") == {"text/plain": text}, show(body)


def test_object_with_repr_html_gets_text_html(server):
    body = execute_ok(server, {"code": code('''
        class Card:
            def __repr__(self):
                return "Card(7)"
            def _repr_html_(self):
                return "<b>seven</b>"
        Card()
    ''')})
    assert body.get("result") == {"text/plain": "Card(7)", "text/html": "<b>seven</b>"}, show(body)


@pytest.mark.parametrize("src", [
    "None\n",
    "print('hello')\n",
    "[].append(1)\n",
    "x = 5\n",
    "x = 5\nx += 1\n",
    "def f():\n    return 3\n",
    "import os\n",
    "for i in range(3):\n    i\n",
    "if True:\n    5\n",
    "pass\n",
], ids=["None", "print", "none-method", "assignment", "augmented", "def", "import", "for", "if",
        "pass"])
def test_no_result_when_the_last_statement_gives_no_value(server, src):
    body = execute_ok(server, {"code": src})
    assert "result" in body, show(body)
    assert body["result"] is None, show(body)


@pytest.mark.parametrize("src,etype", [
    ("1/0\n", "ZeroDivisionError"),
    ("x = 1\nundefined_name + x\n", "NameError"),
    ("5\nraise KeyError('k')\n", "KeyError"),
], ids=["last-raises", "name-error", "raise-after-expression"])
def test_no_result_when_the_code_raises(server, src, etype):
    status, body = execute(server, {"code": src})
    assert status == 200 and body["status"] == "Error", show(body)
    assert body["error"]["type"] == etype, show(body)
    assert "result" in body, show(body)
    assert body["result"] is None, show(body)


def test_last_expression_that_raises_keeps_the_users_traceback(server):
    status, body = execute(server, {"code": "print('before')\nx = 0\n1 / x\n"})
    assert status == 200 and body["status"] == "Error", show(body)
    tb = body["error"]["traceback"]
    frames = re.findall(r'^  File "([^"]*)", line (\d+)', tb, re.M)
    assert [int(line) for _, line in frames] == [3], show(tb)
    assert re.search(r"line 3, in <module>\n    1 / x\n", tb), show(tb)
    for word in ("snakebox", "runpy", "<frozen", "zygote", "runner"):
        assert word not in tb.lower(), show(tb)
    assert body["output"].startswith("before\n"), show(body)
    assert body["output"].rstrip("\n").endswith("ZeroDivisionError: division by zero"), show(body)
    assert body["result"] is None


def test_last_expression_sees_the_programs_globals(server):
    body = execute_ok(server, {"code": "import json\ndata = {'a': [1, 2]}\njson.dumps(data)\n"})
    assert body["result"] == {"text/plain": repr('{"a": [1, 2]}')}, show(body)


def test_result_is_not_added_to_output_or_stdout(server):
    marker = "m4rk3r-value"
    body = execute_ok(server, {"code": f"print('before')\n{marker!r} * 2\n"})
    assert body["result"] == {"text/plain": repr(marker * 2)}, show(body)
    assert body["output"] == "before\n", show(body)
    assert body["stdout"] == "before\n", show(body)
    assert body["stderr"] == "", show(body)
    assert marker not in body["output"]


def test_dataframe_result_is_not_added_to_output(server):
    body = execute_ok(server, {"code": code('''
        import pandas as pd
        pd.DataFrame({"only_in_result": [1, 2]})
    ''')})
    assert "only_in_result" in body["result"]["text/plain"], show(body)
    assert body["output"] == "" and body["stdout"] == "", show(body)


def test_result_is_cut_at_the_default_cap(server):
    body = execute_ok(server, {"code": "'x' * 100000\n"})
    text = body["result"]["text/plain"]
    assert isinstance(text, str) and text.startswith("'xxxxxxxxxx"), show(body)
    assert len(text.encode("utf-8")) <= 65536, len(text.encode("utf-8"))
    assert body["output"] == ""


def test_default_result_cap_counts_bytes_not_characters(server):
    body = execute_ok(server, {"code": "'é' * 100000\n"})
    text = body["result"]["text/plain"]
    assert text.startswith("'éééé") and "\ufffd" not in text, show(text[-50:])
    assert len(text.encode("utf-8")) <= 65536, len(text.encode("utf-8"))


def test_max_result_bytes_cuts_the_result(start_server):
    low, high = key_range("MAX_RESULT_BYTES")
    cap = max(1024, low)
    assert cap <= high and cap < 100000, (low, high)
    srv = start_server({"MAX_RESULT_BYTES": str(cap)})
    body = execute_ok(srv, {"code": "'x' * 100000\n"})
    text = body["result"]["text/plain"]
    assert isinstance(text, str) and text.startswith("'xxxxxxxxxx"), show(body)
    assert len(text.encode("utf-8")) <= cap, (len(text.encode("utf-8")), cap)
    # A short value on the same server is whole.
    body = execute_ok(srv, {"code": "'y' * 100\n"})
    assert body["result"] == {"text/plain": repr("y" * 100)}, show(body)


def test_max_result_bytes_cuts_html_and_multibyte_text_cleanly(start_server):
    low, high = key_range("MAX_RESULT_BYTES")
    cap = max(1024, low)
    assert cap <= high, (low, high)
    srv = start_server({"MAX_RESULT_BYTES": str(cap)})
    body = execute_ok(srv, {"code": code('''
        import pandas as pd
        pd.DataFrame({"a": range(1000), "b": ["word"] * 1000})
    ''')})
    result = body["result"]
    assert isinstance(result, dict) and "text/html" in result, show(body)
    for mime in ("text/plain", "text/html"):
        assert len(result[mime].encode("utf-8")) <= cap, (mime, len(result[mime].encode("utf-8")))
    assert result["text/html"].lstrip().startswith("<"), show(result)
    # A cut through a multi-byte character leaves no broken character behind.
    body = execute_ok(srv, {"code": "'é' * 100000\n"})
    text = body["result"]["text/plain"]
    assert text.startswith("'éééé") and "\ufffd" not in text, show(text[-50:])
    assert len(text.encode("utf-8")) <= cap


def test_max_image_bytes_drops_larger_images(start_server):
    srv = start_server({"MAX_IMAGE_BYTES": "1024"})
    body = execute_ok(srv, {"code": code('''
        import matplotlib.pyplot as plt
        import numpy as np
        plt.figure(figsize=(4, 3))
        plt.imshow(np.random.default_rng(1).random((60, 80)))
        plt.show()
        plt.figure(figsize=(4, 3))
        plt.plot(np.random.default_rng(2).random(500))
    ''')})
    assert_images_fields(body)
    assert body["images"] == [], show(sizes(body))
    assert body["images_dropped"] == 2, show(body)


def test_max_images_zero_returns_none_and_counts_all(start_server):
    srv = start_server({"MAX_IMAGES": "0"})
    body = execute_ok(srv, {"code": code('''
        import matplotlib.pyplot as plt
        plt.figure(figsize=(2, 2))
        plt.plot([1, 2])
        plt.show()
        plt.figure(figsize=(2, 2))
    ''')})
    assert_images_fields(body)
    assert body["images"] == [], show(sizes(body))
    assert body["images_dropped"] == 2, show(body)


def test_show_without_figures_is_harmless(server):
    body = execute_ok(server, {"code": code('''
        import matplotlib.pyplot as plt
        plt.show()
        plt.show(block=False)
        print("fine")
    ''')})
    assert body["stdout"] == "fine\n", show(body)
    assert body["images"] == [] and body["images_dropped"] == 0, show(body)
