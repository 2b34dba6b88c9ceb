import pandas as pd
import numpy as np

# Create sample data
data = {
    "date": pd.date_range(start="2024-01-01", periods=10),
    "sales": np.random.randint(100, 1000, 10),
    "category": np.random.choice(["A", "B", "C"], 10)
}

# Create DataFrame
df = pd.DataFrame(data)

# Basic analysis
print("\nDaily Sales Summary:")
print(df.describe())

# Category analysis
print("\nSales by Category:")
print(df.groupby("category")["sales"].agg(["mean", "sum"]))

# Find best performing day
best_day = df.loc[df["sales"].idxmax()]
print(f"\nBest Sales Day:\n{best_day}")
