from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

X, y = make_classification(n_samples=500, n_features=20, n_informative=8, random_state=0)
clf = LogisticRegression(max_iter=1000, random_state=0).fit(X, y)
print("training accuracy:", round(clf.score(X, y), 4))
