# Representative work the zygote does once, before it forks any sandbox. A library's first use
# pays for lazy imports, caches, compiled regular expressions, font loading and the like; done
# here, every sandbox inherits the result and only pays for its own work. This is snakebox's own
# code, run with output discarded; any failure is ignored (a library may be absent or differ).
# Whatever it leaves behind is reset in each run (random seeds, open figures, __main__).
import contextlib
import io
import sys


def _pandas():
    import numpy as np
    import pandas as pd
    df = pd.DataFrame({
        "date": pd.date_range(start="2024-01-01", periods=12),
        "value": np.arange(12) * 1.5,
        "count": np.arange(12),
        "group": list("ABCABCABCABC"),
    })
    print(df.describe())
    print(df.groupby("group")["value"].agg(["mean", "sum", "count"]))
    print(df.loc[df["value"].idxmax()])
    print(df.head().to_string(), df.dtypes, df.info())
    print(df.pivot_table(index="group", values="value", aggfunc="mean"))
    print(df.sort_values("value").iloc[:3], df["value"].rolling(3).mean().tail(2))
    s = pd.Series([1.0, None, 3.0])
    print(s.fillna(0).sum(), s.isna().any(), pd.to_datetime(["2024-01-01"]))
    print(pd.read_csv(io.StringIO("a,b\n1,2\n3,4\n")).merge(pd.DataFrame({"a": [1], "c": [5]})))
    print(df.to_csv()[:10], df.to_json()[:10], df._repr_html_()[:10])
    print(np.random.randint(0, 10, 5), np.random.choice(["x", "y"], 3), np.linalg.inv(np.eye(3)))


def _matplotlib():
    import matplotlib.pyplot as plt
    import numpy as np
    x = np.linspace(0, 1, 50)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot(x, x ** 2, label="a")
    ax.scatter(x, x, label="b")
    ax.bar(["p", "q"], [1, 2])
    ax.set_title("t")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.legend()
    fig.tight_layout()
    fig.savefig(io.BytesIO(), format="png")
    fig.savefig(io.BytesIO(), format="svg")
    plt.close("all")


def _sklearn():
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import accuracy_score
    X, y = make_classification(n_samples=200, n_features=8, random_state=0)
    Xa, Xb, ya, yb = train_test_split(X, y, random_state=0)
    Xa = StandardScaler().fit_transform(Xa)
    accuracy_score(yb, LogisticRegression(max_iter=200).fit(Xa, ya).predict(Xb))
    RandomForestClassifier(n_estimators=5, random_state=0).fit(Xa, ya).score(Xb, yb)
    LinearRegression().fit(X, X[:, 0] * 2.0).coef_


def steps():
    """The warm-up work for the libraries the zygote imported, most common first."""
    out = []
    if "pandas" in sys.modules:
        out.append(_pandas)
    if "matplotlib" in sys.modules:
        out.append(_matplotlib)
    if "sklearn" in sys.modules:
        out.append(_sklearn)
    return out


def warm():
    sink = io.StringIO()
    for step in steps():
        try:
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                step()
        except Exception:
            pass
