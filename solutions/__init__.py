"""Reference solutions. `partN.py` here is the single source of `exercises/partN.py` and of the notebooks."""
