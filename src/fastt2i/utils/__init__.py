"""Small shared helpers (image grids, conversions) used across data, training and inference."""
