"""The old python-sandbox README's two examples, and the libraries it promises are installed."""

import json
import re

from conftest import ROOT, code, run, run_json, run_ok, show

README = ROOT.parent / "shared" / "origin" / "python-sandbox-README.md"

# The data-analysis example exactly as the old README's curl sends it.
PANDAS_EXAMPLE = (
    'import pandas as pd\nimport numpy as np\n\n# Create sample data\ndata = {\n'
    '    "date": pd.date_range(start="2024-01-01", periods=10),\n'
    '    "sales": np.random.randint(100, 1000, 10),\n'
    '    "category": np.random.choice(["A", "B", "C"], 10)\n}\n\n'
    '# Create DataFrame\ndf = pd.DataFrame(data)\n\n'
    '# Basic analysis\nprint("\\nDaily Sales Summary:")\nprint(df.describe())\n\n'
    '# Category analysis\nprint("\\nSales by Category:")\n'
    'print(df.groupby("category")["sales"].agg(["mean", "sum"]))\n\n'
    '# Find best performing day\nbest_day = df.loc[df["sales"].idxmax()]\n'
    'print(f"\\nBest Sales Day:\\n{best_day}")'
)


def test_hello_world(server):
    status, body = run(server, 'print("Hello, World!")')
    assert status == 200
    assert body["status"] == "Success", show(body)
    assert body["output"] == "Hello, World!\n"
    assert body["stdout"] == "Hello, World!\n"
    assert body["stderr"] == ""
    assert body["exit_code"] == 0
    assert body["signal"] is None
    assert body["error"] is None
    assert body["truncated"] is False


def test_pandas_example_matches_the_old_readme():
    """Guards PANDAS_EXAMPLE against drifting from the README it copies (when the file is there)."""
    if not README.exists():
        return
    m = re.search(r"-d '(\{\"code\": \"import pandas.*?\})'", README.read_text(), re.S)
    assert m, "the data-analysis example is no longer in the old README"
    assert json.loads(m.group(1))["code"] == PANDAS_EXAMPLE


def test_pandas_data_analysis_example(server):
    body = run_ok(server, PANDAS_EXAMPLE)
    out = body["output"]
    assert body["error"] is None
    # The structure of the README's expected output; the numbers are random.
    headings = ["Daily Sales Summary:", "Sales by Category:", "Best Sales Day:"]
    positions = [out.find(h) for h in headings]
    assert all(p >= 0 for p in positions), show(out)
    assert positions == sorted(positions), show(out)
    summary = out[positions[0]:positions[1]]
    assert "sales" in summary
    for stat in ("count", "mean", "std", "min", "25%", "50%", "75%", "max"):
        assert re.search(rf"^{re.escape(stat)}\s+\d", summary, re.M), (stat, summary)
    assert re.search(r"^count\s+10\.0+\s*$", summary, re.M), show(summary)
    by_category = out[positions[1]:positions[2]]
    assert re.search(r"mean\s+sum", by_category), show(by_category)
    assert re.search(r"^category\s*$", by_category, re.M), show(by_category)
    assert re.search(r"^[ABC]\s+\d+(\.\d+)?\s+\d+\s*$", by_category, re.M), show(by_category)
    best = out[positions[2]:]
    assert re.search(r"^date\s+2024-01-(0[1-9]|10)", best, re.M), show(best)
    assert re.search(r"^sales\s+\d{3}\s*$", best, re.M), show(best)
    assert re.search(r"^category\s+[ABC]\s*$", best, re.M), show(best)
    assert "dtype: object" in best


def test_preinstalled_libraries_import_and_work(server):
    result = run_json(server, code('''
        import json
        import numpy, pandas, matplotlib, sklearn
        import matplotlib.pyplot as plt
        from sklearn.linear_model import LinearRegression
        model = LinearRegression().fit([[0], [1], [2]], [0, 2, 4])
        plt.plot([1, 2, 3], [1, 4, 9])
        plt.savefig("plot.png")
        print(json.dumps({
            "backend": matplotlib.get_backend(),
            "slope": float(model.coef_[0]),
            "sum": int(numpy.arange(5).sum()),
            "frame": int(pandas.DataFrame({"a": [1, 2, 3]})["a"].sum()),
        }))
    '''))
    assert result["backend"].lower() == "agg"
    assert abs(result["slope"] - 2.0) < 1e-9
    assert result["sum"] == 10
    assert result["frame"] == 6
