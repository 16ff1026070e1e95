"""End-to-end jobs: `distill` (one concept) and `base` (the multi-concept base)."""
