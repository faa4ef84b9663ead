"""Your work: generated stubs to fill in, one module per part (see `python -m utils.authoring.build`)."""
