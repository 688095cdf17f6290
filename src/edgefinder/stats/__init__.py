"""Domain-free statistics shared by both pipelines."""
