"""One module per verb: build a plan (pure data), then describe or execute it."""
