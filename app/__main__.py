"""python -m app — the web demo (being built: see the README's status)."""

import sys

sys.exit(
    "The web demo (app/) is not built yet. What runs today: `make test`, and\n"
    "`python -c 'from policy.language import verbalize_actions'`. See README.md."
)
