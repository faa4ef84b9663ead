"""Under pytest the notebooks run in CI mode (utils.IS_CI): small data, few steps, so nbval finishes in minutes."""

import os

os.environ.setdefault("IS_CI", "1")
