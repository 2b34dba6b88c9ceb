"""Runs go to the lean zygote (standard library only) unless their code names a module that
only the full zygote has loaded. The answer must not depend on the route: only the time does."""

from conftest import code, run_ok


def loaded(server, src):
    """Runs src, then reports whether pandas was already imported when the run began."""
    # Spelled in two pieces, so that the probe itself does not name the library.
    out = run_ok(server, "import sys\nprint('pan' + 'das' in sys.modules)\n" + src)["stdout"]
    return out.splitlines()[0] == "True"


def test_plain_code_runs_in_the_lean_zygote(server):
    assert not loaded(server, "print(sum(range(10)))")


def test_code_naming_a_library_runs_in_the_full_zygote(server):
    assert loaded(server, "import pandas as pd\nprint(pd.__name__)")
    assert loaded(server, "from sklearn.linear_model import LinearRegression")
    # numpy is enough: the full zygote has everything its imports loaded.
    assert loaded(server, "import numpy")


def test_dynamic_import_from_the_lean_zygote_still_works(server):
    out = run_ok(server, code('''
        import importlib, sys
        name = "num" + "py"
        assert name not in sys.modules
        np = importlib.import_module(name)
        print(np.arange(4).sum())
    '''))["stdout"]
    assert out.strip() == "6"


def test_both_routes_give_the_same_answer_shape(server):
    a = run_ok(server, "print(6 * 7)")
    b = run_ok(server, "import numpy\nprint(6 * 7)")
    assert a["output"] == b["output"] == "42\n"
    assert set(a) == set(b)
