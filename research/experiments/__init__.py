"""Research experiments on DDPM/DDIM, each one command writing results.json, PNG plots and README.md:

    python -m research.experiments <name> [--quick] --out docs/experiments/<name>/

names: prior_gap, centering, ddim_table, single_image, embeddings, scale_linearity, metrics, x0_substitute,
batch_centering, truncated (see each module's docstring). Data: scikit-learn's bundled 8×8 digits; the judge is a small CNN trained on real digits (see `common`).
"""
EXPERIMENTS = ("prior_gap", "centering", "ddim_table", "single_image", "embeddings", "scale_linearity", "metrics",
               "x0_substitute", "batch_centering", "truncated")
