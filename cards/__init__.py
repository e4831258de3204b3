"""The clinical knowledge of calcinosis-cds: one module per recommendation of the article.

Each module declares its rule with @rule (id, title, the article's statement, reference numbers, evidence level,
trigger in words, hooks) above the function that decides whether it fires and what the card says. Importing this
package declares them all; `calcinosis-cds rules` prints the catalogue generated from these declarations.
"""

from importlib import import_module
from pathlib import Path

# Every module in this folder except private ones is a rule (or the gate); import them all, in name order.
for _module in sorted(p.stem for p in Path(__file__).parent.glob("*.py") if not p.stem.startswith("_")):
    import_module(f"{__name__}.{_module}")
