"""Research code beside the library: the source note's experiments and diagnostics."""
