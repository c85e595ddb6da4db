"""Item: the README's first snippet runs as pasted (it loads its own data)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_first_readme_snippet_runs_as_pasted():
    first = re.search(r"```python\n(.*?)```", README.read_text(), re.DOTALL).group(1)
    namespace = {}
    exec(compile(first, "README.md", "exec"), namespace)  # noqa: S102
    det, X_new = namespace["det"], namespace["X_new"]
    assert det.predict(X_new).shape == (100,)
    p = det.conformal_pvalues(X_new)
    assert ((p > 0) & (p <= 1)).all()
