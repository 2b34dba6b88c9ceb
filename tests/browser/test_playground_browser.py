"""The playground page (issue 16) in a real browser: Debian's chromium, headless, driven by
chromedriver through python3-selenium, against a real server on loopback.

What a user does is what the tests do: type in a cell, press Shift+Enter or click, read what the
page shows. Every test starts on a fresh page with a fresh session (sessionStorage cleared).
Code the page runs is untrusted, so the XSS tests each try to make the page (or a frame of it)
set `window.__pwned` from a cell's output, result, figure or file, and check that it stays unset.

Before this branch the server had no page: GET /playground was 404 and every test here failed
at the first wait for a cell (or, for the headers, on the 404).

Screenshots go to build/browser/ (the README's comes from there). Where chromium, chromedriver
or selenium is missing, or chromium cannot start, the whole module is skipped and says why."""

import json
import os
import shutil
import time

import pytest

from conftest import ROOT, TEST_LIMITS, delete_session, ready_server, wait_session_state

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException, TimeoutException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError as e:  # pragma: no cover - the skip below says so
    webdriver = None
    SELENIUM_ERROR = str(e)

CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BIN", "/usr/bin/chromedriver")
ARTIFACTS = ROOT / "build" / "browser"
# Generous: a cell in a session takes well under a second here; only a broken page waits this long.
WAIT = 30

# Cells run up to a minute: only the Interrupt button ends the infinite loop below, never the
# server's own timeout. Small pools: the browser needs the CPU more.
ENV = dict(TEST_LIMITS, EXECUTION_TIMEOUT="60", POOL_SIZE="1", LEAN_POOL_SIZE="1", MAX_SESSIONS="16")
# The extra servers of a few tests need no library: no pandas import makes them start in a
# fraction of the time on a loaded machine.
LIGHT = dict(ENV, PREINSTALL_LIBS="", LEAN_POOL_SIZE="0")


def _skip_reason():
    if webdriver is None:
        return f"browser tests skipped: python3-selenium is not installed ({SELENIUM_ERROR})"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return f"browser tests skipped: {path} is not installed (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def server():
    s = ready_server(ENV)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def browser():
    why = _skip_reason()
    if why:
        pytest.skip(why)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # As root chromium refuses to start without --no-sandbox; headless=new is the real browser
    # without a display.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,900", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update",
                "--disable-default-apps", "--disable-sync", "--metrics-recording-only",
                "--no-default-browser-check", "--disable-features=Translate,OptimizationHints,MediaRouter"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    except WebDriverException as e:
        pytest.skip(f"browser tests skipped: chromium cannot start here: {str(e).strip()[:400]}")
    driver.set_page_load_timeout(WAIT)
    yield driver
    driver.quit()


def open_fresh(browser, server):
    """Opens the playground of server with an empty sessionStorage (no session, no key) and waits
    for its first cell. Returns the server's base URL."""
    base = f"http://127.0.0.1:{server.port}"
    browser.get(base + "/playground")
    browser.execute_script("sessionStorage.clear()")
    browser.get(base + "/playground")
    WebDriverWait(browser, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".cell .editor"))
    return base


@pytest.fixture
def page(server, browser):
    """A fresh page (no session yet) on the module's server; fails the test if the page showed a
    script error or made a request to another origin."""
    base = open_fresh(browser, server)
    browser.get_log("performance")
    browser.get_log("browser")  # what earlier tests left there
    browser.base = base
    browser.server = server
    yield browser
    requests = network_requests(browser)
    foreign = [u for u in requests if not u.startswith(base + "/") and not u.startswith(("data:", "blob:"))]
    assert not foreign, f"requests to another origin: {foreign}"
    # Script errors and CSP violations; not the statuses of our own origin's answers ("network":
    # a 410 a test provokes, the XSS tests' src=x), which the tests check by what the page shows.
    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE" and e.get("source") != "network"]
    assert not errors, f"errors in the page's console: {errors}"


def network_requests(driver):
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def editors(d):
    return d.find_elements(By.CSS_SELECTOR, ".cell .editor")


def outputs(d):
    return d.find_elements(By.CSS_SELECTOR, ".cell .output")


def prompts(d):
    return [p.text for p in d.find_elements(By.CSS_SELECTOR, ".cell .prompt")]


def type_in(d, i, text):
    """Types into cell i as a user would: the editor's own key handling applies (Enter keeps the
    line's indentation), so the text has none of its own."""
    ed = editors(d)[i]
    ed.click()
    ed.send_keys(Keys.CONTROL, "a")
    ed.send_keys(Keys.DELETE)
    ed.send_keys(text)


def set_code(d, i, text):
    """Puts code with its own indentation into cell i (as a paste would)."""
    d.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'))",
                     editors(d)[i], text)


def shift_enter(d):
    ActionChains(d).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()


def ctrl_enter(d):
    ActionChains(d).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(Keys.CONTROL).perform()


def wait_done(d, i, timeout=WAIT):
    """Waits until cell i has finished: its prompt has a number (a dash in one-shot mode, ! when
    it could not run) and it is not running."""
    def done(drv):
        cell = drv.find_elements(By.CSS_SELECTOR, ".cell")[i]
        p = cell.find_element(By.CSS_SELECTOR, ".prompt").text
        return "running" not in cell.get_attribute("class") and "*" not in p and p != "In [ ]:"
    try:
        WebDriverWait(d, timeout).until(done)
    except TimeoutException:
        pytest.fail(f"cell {i} did not finish: prompts {prompts(d)}, output {outputs(d)[i].text!r}")
    return outputs(d)[i].text


def run_cell(d, i, code, paste=False):
    """Puts code in cell i, runs it with Ctrl+Enter, waits for it; returns its output's text."""
    (set_code if paste else type_in)(d, i, code)
    editors(d)[i].click()
    ctrl_enter(d)
    return wait_done(d, i)


def pwned(d):
    return d.execute_script("return window.__pwned === undefined ? null : String(window.__pwned)")


def screenshot(d, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    d.save_screenshot(str(ARTIFACTS / name))


# --- the notebook ------------------------------------------------------------------------------

def test_shift_enter_runs_and_moves_on_and_variables_survive(page):
    type_in(page, 0, "x = 6 * 7\nprint('x is', x)")
    shift_enter(page)
    WebDriverWait(page, WAIT).until(lambda d: len(editors(d)) == 2)
    # Shift+Enter moved the focus to the new cell: typing goes there.
    assert page.switch_to.active_element == editors(page)[1]
    out = wait_done(page, 0)
    assert "x is 42" in out
    page.switch_to.active_element.send_keys("x + 1")
    ctrl_enter(page)
    out = wait_done(page, 1)
    assert "43" in out
    assert prompts(page)[:2] == ["In [1]:", "In [2]:"]


def test_output_streams_in_before_the_cell_ends(page):
    type_in(page, 0, "import time\nprint('first line', flush=True)\ntime.sleep(2)\nprint('second line')")
    ctrl_enter(page)
    cell = page.find_elements(By.CSS_SELECTOR, ".cell")[0]
    WebDriverWait(page, WAIT).until(lambda d: "first line" in outputs(d)[0].text)
    # The first line is on the page while the cell still runs and before the second exists.
    text = outputs(page)[0].text
    assert "second line" not in text
    assert "running" in cell.get_attribute("class")
    out = wait_done(page, 0)
    assert out.index("first line") < out.index("second line")


def test_bar_chart_example_shows_a_figure(page):
    # A first cell for the screenshot (the README's): a table, as a notebook starts.
    run_cell(page, 0, "import pandas as pd\ndf = pd.DataFrame({'city': ['Oslo', 'Lima', 'Cairo', 'Hanoi'], "
             "'temp': [4, 19, 27, 24]})\nprint(f'{len(df)} cities, mean {df.temp.mean():.1f}')\ndf.head(2)", paste=True)
    Select(page.find_element(By.ID, "examples")).select_by_visible_text("Bar chart")
    # The example went into a new cell after the first (which is not empty), and has the focus.
    assert len(editors(page)) == 2 and page.switch_to.active_element == editors(page)[1]
    assert "ax.bar(" in editors(page)[1].get_attribute("value")
    ctrl_enter(page)
    wait_done(page, 1)
    img = WebDriverWait(page, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".cell .output img.figure"))[0]
    WebDriverWait(page, WAIT).until(lambda d: d.execute_script("return arguments[0].complete", img))
    w, h = page.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img)
    assert w > 0 and h > 0
    assert img.get_attribute("src").startswith("data:image/png;base64,")
    page.set_window_size(1200, 1250)  # the whole notebook in one picture
    try:
        screenshot(page, "playground-chart.png")
    finally:
        page.set_window_size(1200, 900)


def test_dataframe_html_renders_in_a_sandboxed_frame(page):
    run_cell(page, 0, "import pandas as pd\npd.DataFrame({'city': ['Oslo', 'Lima'], 'temp': [4, 19]})")
    frame = page.find_element(By.CSS_SELECTOR, ".cell .output iframe.html")
    assert frame.get_attribute("sandbox") == ""
    page.switch_to.frame(frame)
    try:
        cells = [td.text for td in page.find_elements(By.CSS_SELECTOR, "table td")]
    finally:
        page.switch_to.default_content()
    assert "Oslo" in cells and "19" in cells
    screenshot(page, "playground-dataframe.png")


def test_interrupt_keeps_the_variables_and_restart_clears_them(page):
    run_cell(page, 0, "kept = 'still here'")
    page.find_element(By.ID, "add-cell").click()
    type_in(page, 1, "while True: pass")
    ctrl_enter(page)
    WebDriverWait(page, WAIT).until(lambda d: prompts(d)[1] == "In [2]:")  # it started
    page.find_element(By.ID, "interrupt").click()
    out = wait_done(page, 1)
    assert "KeyboardInterrupt" in out
    page.find_element(By.ID, "add-cell").click()
    assert "still here" in run_cell(page, 2, "print(kept)")
    page.find_element(By.ID, "restart").click()
    WebDriverWait(page, WAIT).until(lambda d: "Restarted" in d.find_element(By.ID, "status").text)
    out = run_cell(page, 2, "print(kept)")
    assert "NameError" in out
    assert prompts(page)[2] == "In [1]:"


def test_stop_button_ends_a_cell(page):
    run_cell(page, 0, "kept = 5")
    page.find_element(By.ID, "add-cell").click()
    type_in(page, 1, "import time\nprint('started', flush=True)\ntime.sleep(50)")
    ctrl_enter(page)
    WebDriverWait(page, WAIT).until(lambda d: "started" in outputs(d)[1].text)
    page.find_elements(By.CSS_SELECTOR, ".cell")[1].find_element(By.XPATH, ".//button[text()='Stop']").click()
    WebDriverWait(page, WAIT).until(lambda d: "stopped" in outputs(d)[1].text)
    # The server interrupted the cell (the client went away): the session becomes idle again
    # and kept its variables.
    sid = page.execute_script("return sessionStorage.getItem('snakebox-session')")
    wait_session_state(page.server, sid, "idle")
    page.find_element(By.ID, "add-cell").click()
    assert "10" in run_cell(page, 2, "print(kept * 2)")


# --- XSS: the code's output must never act in the page ---------------------------------------

def test_printed_html_is_text(page):
    out = run_cell(page, 0, 'print("<img src=x onerror=\\"window.__pwned=1\\"><script>window.__pwned=2</script>")')
    time.sleep(0.5)  # an image that fails to load fires onerror soon after
    assert pwned(page) is None
    assert "<img src=x onerror=" in out
    assert not page.find_elements(By.CSS_SELECTOR, ".cell .output img:not(.figure)")


def test_html_results_run_no_script(page):
    evil = "<script>parent.__pwned=1;top.__pwned=1</script><img src=x onerror='parent.__pwned=2'>"
    run_cell(page, 0, "import pandas as pd\npd.DataFrame({'a': [" + repr(evil) + "]})", paste=True)
    page.find_element(By.ID, "add-cell").click()
    run_cell(page, 1, "H = type('H', (), {'_repr_html_': lambda self: " + repr(evil) + "})\nH()", paste=True)
    time.sleep(1)
    assert pwned(page) is None
    frames = page.find_elements(By.CSS_SELECTOR, ".cell .output iframe")
    assert len(frames) == 2 and all(f.get_attribute("sandbox") == "" for f in frames)


def test_svg_figure_with_script_does_not_run(page):
    Select(page.find_element(By.ID, "figure-format")).select_by_value("svg")
    # The runner renders figures inside the sandbox, where the cell's code can replace savefig:
    # the figure's bytes are the attacker's.
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" width="60" height="40" onload="parent.__pwned=1">'
           '<script>window.__pwned=1;parent.__pwned=1</script><rect width="60" height="40" fill="red"/>'
           '<image href="x" width="1" height="1" onerror="window.__pwned=3;parent.__pwned=3"/></svg>')
    code = ("import matplotlib.figure as mf\nimport matplotlib.pyplot as plt\n"
            f"mf.Figure.savefig = lambda self, buf, **kw: buf.write({svg!r}.encode())\n"
            "plt.figure()\nplt.show()")
    run_cell(page, 0, code, paste=True)
    time.sleep(0.5)
    assert pwned(page) is None
    img = WebDriverWait(page, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".cell .output img.figure"))[0]
    assert img.get_attribute("src").startswith("data:image/svg+xml;base64,")
    WebDriverWait(page, WAIT).until(lambda d: d.execute_script("return arguments[0].complete", img))
    assert page.execute_script("return arguments[0].naturalWidth", img) > 0  # it did render
    assert not page.find_elements(By.CSS_SELECTOR, "svg")  # never inline


def test_a_file_named_and_made_of_html_is_only_text_and_a_download(page):
    name = "<img src=x onerror=window.__pwned=1>.html"
    run_cell(page, 0, f"open({name!r}, 'w').write('<script>window.__pwned=1</script>')", paste=True)
    item = WebDriverWait(page, WAIT).until(
        lambda d: [li for li in d.find_elements(By.CSS_SELECTOR, "#files li") if ".html" in li.text])[0]
    time.sleep(0.5)
    assert pwned(page) is None
    assert name in item.text
    url = page.current_url
    item.find_element(By.TAG_NAME, "button").click()
    time.sleep(1)
    assert page.current_url == url
    assert len(page.window_handles) == 1
    assert pwned(page) is None


# --- headers and the switch --------------------------------------------------------------------

def test_page_headers_seen_by_the_browser(page):
    """The headers as chromium received them (its network log), not as a client library parses
    them: the CSP is there, the page is not frameable, nothing is sniffed."""
    page.get(page.base + "/playground")
    WebDriverWait(page, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".cell .editor"))
    headers = None
    for entry in page.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.responseReceived" and msg["params"]["response"]["url"] == page.base + "/playground":
            headers = {k.lower(): v for k, v in msg["params"]["response"]["headers"].items()}
    assert headers is not None
    csp = headers["content-security-policy"]
    for directive in ("default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'",
                      "base-uri 'none'", "form-action 'none'"):
        assert directive in csp
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"


def test_playground_off_is_404(browser, start_server):
    s = start_server(dict(LIGHT, PLAYGROUND="0"))
    base = f"http://127.0.0.1:{s.port}"
    for path in ("/playground", "/", "/playground/app.js"):
        status = None
        browser.get(base + path)
        for entry in browser.get_log("performance"):
            msg = json.loads(entry["message"])["message"]
            if msg.get("method") == "Network.responseReceived" and msg["params"]["response"]["url"] == base + path:
                status = msg["params"]["response"]["status"]
        assert status == 404, path


# --- keys, files, one-shot mode ----------------------------------------------------------------

def test_api_key_is_asked_for_and_kept_out_of_urls(browser, start_server):
    key = "pg-browser-key-5f1c"
    s = start_server(dict(LIGHT, API_KEYS=key))
    open_fresh(browser, s)
    browser.get_log("performance")
    run_cell(browser, 0, "print('no key yet')")
    # The session could not be made (401): the page asks for a key.
    box = browser.find_element(By.ID, "key-box")
    assert box.is_displayed()
    assert "API key" in browser.find_element(By.ID, "status").text
    field = browser.find_element(By.ID, "key")
    field.send_keys(key, Keys.ENTER)
    out = run_cell(browser, 0, "print('with the key')")
    assert "with the key" in out
    assert browser.execute_script("return sessionStorage.getItem('snakebox-api-key')") == key
    assert browser.execute_script("return localStorage.length") == 0
    urls = network_requests(browser)
    assert urls and not [u for u in urls if key in u]


def test_upload_list_and_use_a_file(page, tmp_path):
    src = tmp_path / "temps.csv"
    src.write_text("city,temp\nOslo,4\nLima,19\n")
    page.find_element(By.ID, "upload").send_keys(str(src))
    WebDriverWait(page, WAIT).until(
        lambda d: any("temps.csv" in li.text for li in d.find_elements(By.CSS_SELECTOR, "#files li")))
    out = run_cell(page, 0, "import pandas as pd\nprint(pd.read_csv('temps.csv').temp.sum())", paste=True)
    assert "23" in out


def test_run_all_stderr_and_the_idle_time(page):
    set_code(page, 0, "import sys\nprint('to stderr', file=sys.stderr)\nvalue = 1")
    page.find_element(By.ID, "add-cell").click()
    set_code(page, 1, "value + 1")
    page.find_element(By.ID, "add-cell").click()
    set_code(page, 2, "1/0")
    page.find_element(By.ID, "add-cell").click()
    set_code(page, 3, "print('not reached')")
    page.find_element(By.ID, "run-all").click()
    wait_done(page, 2)
    assert prompts(page)[:3] == ["In [1]:", "In [2]:", "In [3]:"]
    assert page.find_element(By.CSS_SELECTOR, ".cell:nth-child(1) .output pre.stderr").text == "to stderr"
    assert "2" in outputs(page)[1].text
    assert "ZeroDivisionError" in page.find_element(By.CSS_SELECTOR, ".cell:nth-child(3) .output pre.stderr").text
    # Run all stops at the first error.
    WebDriverWait(page, WAIT).until(lambda d: prompts(d)[3] == "In [ ]:")
    assert outputs(page)[3].text == ""
    remaining = page.find_element(By.ID, "remaining").text
    assert remaining.startswith("session idle time left "), remaining
    minutes = int(remaining.rsplit(" ", 1)[1].split(":")[0])
    assert 9 <= minutes <= 10  # SESSION_IDLE_TIMEOUT's default, 600 s, just restarted


def test_one_shot_mode_without_sessions(browser, start_server):
    s = start_server(dict(LIGHT, MAX_SESSIONS="0"))
    open_fresh(browser, s)
    out = run_cell(browser, 0, "import time\nprint('one', flush=True)\nx = 5\nprint(x)")
    assert "one" in out and "5" in out
    assert "one-shot" in browser.find_element(By.ID, "remaining").text
    browser.find_element(By.ID, "add-cell").click()
    assert "NameError" in run_cell(browser, 1, "print(x)")


def test_a_session_that_ended_is_replaced_for_the_next_cell(page):
    run_cell(page, 0, "gone_soon = 1")
    sid = page.execute_script("return sessionStorage.getItem('snakebox-session')")
    assert delete_session(page.server, sid).status == 204  # as an idle timeout would end it
    page.find_element(By.ID, "add-cell").click()
    out = run_cell(page, 1, "print('fresh', 'gone_soon' in globals())")
    assert "The session had ended (deleted)" in out
    assert "fresh False" in out
    assert prompts(page)[1] == "In [1]:"
    assert page.execute_script("return sessionStorage.getItem('snakebox-session')") not in (None, sid)
