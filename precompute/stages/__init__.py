"""Pipeline stages that take and return schema records (``precompute.pipeline`` calls them)."""
