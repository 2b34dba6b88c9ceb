import io

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

x = np.linspace(0, 10, 200)
fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(x, np.sin(x), label="sin(x)")
ax.plot(x, np.cos(x), label="cos(x)")
ax.set_title("Waves")
ax.set_xlabel("x")
ax.legend()
buf = io.BytesIO()
fig.savefig(buf, format="png", dpi=100)
plt.close(fig)
png = buf.getvalue()
assert png[:8] == b"\x89PNG\r\n\x1a\n"
print("PNG bytes:", len(png))
