"""The reference implementation: one module per exercise, the single source of truth for exercises/."""
