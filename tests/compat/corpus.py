"""The compatibility corpus: real code from Debian packages, made into programs to run twice.

Each Item is one program (Python source) that tests/compat/compat.py runs through snakebox and
through plain /usr/bin/python3, and what to compare:
  - "script" items (scikit-learn gallery examples, pandas user-guide pages) are compared on exit
    status, the exception raised if any, and normalised stdout;
  - "unittest" items (CPython regression modules) print one line `COMPAT-RESULT <json>` with the
    outcome of every test that did not pass, and are compared test by test.

Nothing here is written by us but the small drivers around the packages' code: the examples run
as they are shipped, the pandas pages are their own `.. ipython:: python` blocks in order, the
CPython modules are the ones Debian ships in libpython3.11-testsuite.
"""

import pprint
import re
from dataclasses import dataclass
from pathlib import Path

SKLEARN_DIR = Path("/usr/share/doc/python-sklearn-doc/examples")
PANDAS_DIR = Path("/usr/share/doc/python-pandas-doc/html/_sources/user_guide")
CPYTHON_TEST_DIR = Path("/usr/lib/python3.11/test")

# The Debian package each corpus comes from (scripts/install-deps compat installs them all).
PACKAGES = {
    "sklearn": "python-sklearn-doc",
    "pandas": "python-pandas-doc",
    "cpython": "libpython3.11-testsuite",
}


@dataclass
class Item:
    id: str            # "<corpus>/<name>", the key of the report and of expected.toml
    kind: str          # "script" or "unittest"
    code: str = ""     # the program; empty when skipped
    timeout: int = 120  # seconds, for each side (snakebox's per-request "timeout")
    skip: str = ""     # why this item is not run, when it is not


# --- scikit-learn gallery ---------------------------------------------------------------------
# A fixed sample of python-sklearn-doc's 285 gallery examples (the issue ran all 90 runnable
# ones by hand; the whole gallery takes hours on 2 cores). Chosen to cover every kind of code the
# gallery has, without the network: every data set here is generated or shipped inside sklearn
# (iris, digits, diabetes, wine), none calls fetch_* or downloads anything. Several use n_jobs
# (joblib's loky processes and threads), the rest are single-process numpy/scipy work and
# matplotlib figures. Each takes under 40 s under plain python3 on the development VM.
SKLEARN_SAMPLE = (
    "classification/plot_digits_classification.py",
    "classification/plot_classification_probability.py",
    "cluster/plot_dbscan.py",
    "cluster/plot_kmeans_silhouette_analysis.py",
    "cluster/plot_affinity_propagation.py",
    "compose/plot_digits_pipe.py",
    "compose/plot_feature_union.py",
    "decomposition/plot_pca_vs_lda.py",
    "ensemble/plot_forest_importances.py",
    "ensemble/plot_gradient_boosting_regression.py",
    "feature_selection/plot_rfe_with_cross_validation.py",
    "linear_model/plot_ols.py",
    "linear_model/plot_lasso_and_elasticnet.py",
    "linear_model/plot_logistic_l1_l2_sparsity.py",
    "model_selection/plot_confusion_matrix.py",
    "model_selection/plot_grid_search_digits.py",
    "model_selection/plot_nested_cross_validation_iris.py",
    "model_selection/plot_validation_curve.py",
    "neighbors/plot_digits_kde_sampling.py",
    "miscellaneous/plot_estimator_representation.py",
    "gaussian_process/plot_gpr_prior_posterior.py",
)


def sklearn_items():
    items = []
    for rel in SKLEARN_SAMPLE:
        path = SKLEARN_DIR / rel
        items.append(Item(id="sklearn/" + rel[:-3], kind="script", code=path.read_text(), timeout=180))
    return items


# --- pandas user guide ------------------------------------------------------------------------
# Every page of the user guide's sources (python-pandas-doc ships them as _sources/*.rst.txt), its
# `.. ipython:: python` blocks run in order as one program. Plain `.. ipython::` blocks hold
# IPython session transcripts marked @verbatim (never executed by the doc build either), and
# `:verbatim:` blocks are shown, not run: both are left out, as Sphinx leaves them out.
PANDAS_SKIP = {
    "index": "the table of contents: no code",
    "cookbook": "no ipython blocks: its code is in plain literal blocks, many of them fragments",
    "style": "a notebook (style.ipynb), not ipython blocks",
}

# What pandas' doc/source/conf.py puts at the top of every page ({{ header }}): a seeded random
# generator and the display options the rendered pages show. Without the seed a page's output
# would differ between any two runs.
PANDAS_HEADER = """\
import numpy as np
import pandas as pd
np.random.seed(123456)
np.set_printoptions(precision=4, suppress=True)
pd.options.display.max_rows = 15
"""

DIRECTIVE_RE = re.compile(r"^(\s*)\.\. ipython::\s*(\S*)\s*$")
OPTION_RE = re.compile(r"^\s*:(\w+):")

# Runs the blocks as the ipython directive does: statement by statement in one namespace, each
# expression's value displayed (repr), the exception of an `:okexcept:` block shown and passed.
# Any other exception is shown too, the page goes on, and the program exits 1 at the end: a
# page is compared on every statement rather than up to its first failure.
PANDAS_DRIVER = '''\
import ast as _ast
import sys as _sys

_PAGE = {page!r}
_BLOCKS = {blocks}
_failed = False
exec(compile({header!r}, "<header>", "exec"), globals())
for _line, _okexcept, _src in _BLOCKS:
    _where = f"{{_PAGE}}.rst:{{_line}}"
    try:
        _tree = _ast.parse(_src, _where)
    except SyntaxError as _e:
        print(f"!! SyntaxError in the block at {{_where}}")
        _failed = _failed or not _okexcept
        continue
    for _stmt in _tree.body:
        try:
            if isinstance(_stmt, _ast.Expr):
                _value = eval(compile(_ast.Expression(_stmt.value), _where, "eval"), globals())
                if _value is not None:
                    print(repr(_value))
            else:
                exec(compile(_ast.Module([_stmt], []), _where, "exec"), globals())
        except Exception as _e:
            print(f"!! {{type(_e).__name__}} at {{_where}}+{{_stmt.lineno - 1}}")
            _failed = _failed or not _okexcept
_sys.stdout.flush()
_sys.exit(1 if _failed else 0)
'''


def pandas_blocks(text):
    """[(line number, okexcept, source)] of the page's executed `.. ipython:: python` blocks."""
    lines = text.splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        m = DIRECTIVE_RE.match(lines[i])
        i += 1
        if not m:
            continue
        indent = len(m.group(1))
        options = set()
        while i < len(lines) and OPTION_RE.match(lines[i]):
            options.add(OPTION_RE.match(lines[i]).group(1))
            i += 1
        start = i
        body = []
        # The body is every following line indented deeper than the directive, blank lines
        # included, up to the first non-blank line that is not.
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            body.append(lines[i])
            i += 1
        if m.group(2) != "python" or "verbatim" in options:
            continue
        # Not Python, and left out: `@savefig file.png` (marks the next statement's figure for
        # the docs), IPython's line magics (%timeit, %prun, %load_ext: their output is timings
        # and profiles) and the line `%%time` (its cell runs as it is). A `%%cython` cell needs
        # Cython, which is not installed: left out whole.
        if any(ln.strip().startswith("%%cython") for ln in body):
            continue
        body = ["" if ln.strip().startswith(("@savefig", "%")) else ln for ln in body]
        depth = min((len(ln) - len(ln.lstrip()) for ln in body if ln.strip()), default=0)
        source = "\n".join(ln[depth:] for ln in body).strip("\n") + "\n"
        blocks.append((start + 1, "okexcept" in options, source))
    return blocks


def pandas_items():
    items = []
    for path in sorted(PANDAS_DIR.glob("*.rst.txt")):
        page = path.name[: -len(".rst.txt")]
        if page in PANDAS_SKIP:
            items.append(Item(id="pandas/" + page, kind="script", skip=PANDAS_SKIP[page]))
            continue
        blocks = pandas_blocks(path.read_text())
        code = PANDAS_DRIVER.format(page=page, header=PANDAS_HEADER,
                                    blocks=pprint.pformat(blocks))
        items.append(Item(id="pandas/" + page, kind="script", code=code, timeout=300))
    for page in sorted(PANDAS_SKIP):
        if not (PANDAS_DIR / f"{page}.rst.txt").exists():
            items.append(Item(id="pandas/" + page, kind="script", skip=PANDAS_SKIP[page]))
    return items


# --- CPython regression modules ---------------------------------------------------------------
# The modules of libpython3.11-testsuite that exercise what a sandbox changes: processes,
# signals, threads, the file system, time, standard streams. Each entry: the module, the timeout
# (about three times what it takes under plain python3 on the development VM, 2 shared cores,
# measured with `python3 -m unittest`), and a regular expression of the test ids left out. A
# name "module[variant]" is a second item of one module, with other tests left out.
CPYTHON_MODULES = (
    ("test_tempfile", 60, None),
    ("test_time", 60, None),
    ("test_os", 60, None),
    ("test_signal", 180, None),
    ("test_threading", 60, None),
    ("test_subprocess", 180, None),
    ("test_io", 150, None),
    # The thread and fork variants; the spawn variants are the next item, and the forkserver
    # ones are left out (a third start method over the same executor code, and minutes).
    ("test_concurrent_futures", 300, r"\.ProcessPool(Spawn|Forkserver)"),
    # spawn: the workers import __main__ from its file (issue 11, item 5).
    ("test_concurrent_futures[spawn]", 180, r"^(?!.*\.ProcessPoolSpawnProcessPoolExecutorTest\.)"),
    ("test_asyncio.test_events", 90, None),
    ("test_asyncio.test_subprocess", 90, None),
    ("test_multiprocessing_fork", 300, None),
)

# Runs one module with unittest, as `python3 -m test` would without -u (no optional resource
# such as network or cpu enabled), names each test as it starts, and prints every test that
# did not pass on the last line.
# The result goes to the stdout the program started with: tests swap sys.stdout. A flat suite
# keeps unittest's class and module fixtures (they follow the order of the tests).
CPYTHON_DRIVER = '''\
import json
import re
import sys
import unittest
from test import support

support.use_resources = []
support.verbose = 0
_out = sys.stdout
_EXCLUDE = {exclude!r}


def _tests(suite):
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from _tests(test)
        elif not (_EXCLUDE and re.search(_EXCLUDE, test.id())):
            yield test


class _Result(unittest.TestResult):
    """Names each test as it starts: a run that is stopped (timeout) shows where it was."""

    def startTest(self, test):
        print("COMPAT-TEST " + test.id(), file=_out, flush=True)
        super().startTest(test)


_suite = unittest.TestSuite(_tests(unittest.defaultTestLoader.loadTestsFromName({name!r})))
_result = _Result()
_suite.run(_result)
_outcomes = {{}}
_why = {{}}  # the last line of a failure's traceback, or the reason of a skip: for the report
for _kind, _entries in (("failed", _result.failures), ("error", _result.errors),
                        ("skipped", _result.skipped), ("expected-failure", _result.expectedFailures)):
    for _test, _text in _entries:
        _outcomes[_test.id()] = _kind
        _why[_test.id()] = (_text.strip().splitlines() or [""])[-1][:300]
for _test in _result.unexpectedSuccesses:
    _outcomes[_test.id()] = "unexpected-success"
print("COMPAT-RESULT " + json.dumps({{"run": _result.testsRun, "outcomes": _outcomes, "why": _why}},
                                    sort_keys=True), file=_out, flush=True)
'''


def cpython_items():
    items = []
    for name, timeout, exclude in CPYTHON_MODULES:
        module = name.split("[")[0]
        code = CPYTHON_DRIVER.format(name="test." + module, exclude=exclude)
        items.append(Item(id="cpython/" + name, kind="unittest", code=code, timeout=timeout))
    return items


CORPORA = {
    "sklearn": sklearn_items,
    "pandas": pandas_items,
    "cpython": cpython_items,
}

# The subset `make test` runs (make compat-subset): short (under a minute for both sides),
# deterministic (each test gave the same outcome in every run here, on a loaded machine too),
# and run with the server's default configuration, so it needs only libpython3.11-testsuite
# (25 MB installed). test_time covers issue 11 item 3 (pthread_getcpuclockid of the main
# thread). test_threading was left out: two of its timing tests failed on both sides once the
# machine was loaded, which would make `make test` flaky; test_signal and test_subprocess
# (issue 11 items 1 and 2) take minutes and are left to `make compat`.
SUBSET = (
    "cpython/test_tempfile",
    "cpython/test_time",
    "cpython/test_os",
)
