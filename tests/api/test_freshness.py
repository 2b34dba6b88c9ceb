"""Every run starts fresh: new random sequences, a new __main__, untouched modules."""

from conftest import code, run_json, run_ok, show


def test_random_numbers_differ_between_runs(server):
    src = code('''
        import json, random
        import numpy
        print(json.dumps([random.random(), float(numpy.random.rand()), random.getrandbits(64)]))
    ''')
    first = run_json(server, src)
    second = run_json(server, src)
    assert first[0] != second[0], "random.random() repeats across runs"
    assert first[1] != second[1], "numpy.random.rand() repeats across runs"
    assert first[2] != second[2], "random.getrandbits() repeats across runs"


def test_main_and_modules_are_fresh_each_run(server):
    run_ok(server, code('''
        import builtins, json, os, sys
        leaked_global = "from the first run"
        builtins.leaked_builtin = 1
        json.leaked_attribute = 1
        sys.leaked_attribute = 1
        sys.path.append("/leaked/path")
        os.environ["LEAKED_VARIABLE"] = "1"
        import this  # a module the second run has not imported
        print("planted")
    '''))
    seen = run_json(server, code('''
        import builtins, json, os, sys
        print(json.dumps({
            "global": "leaked_global" in globals(),
            "builtin": hasattr(builtins, "leaked_builtin"),
            "json": hasattr(json, "leaked_attribute"),
            "sys": hasattr(sys, "leaked_attribute"),
            "path": "/leaked/path" in sys.path,
            "environ": "LEAKED_VARIABLE" in os.environ,
            "module": "this" in sys.modules,
        }))
    '''))
    assert seen == {k: False for k in seen}, show(seen)
