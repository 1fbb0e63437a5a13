"""Small shared helpers used across data, training, inference and the CLI: image grids and conversions (`images`),
output-path checks and per-prompt file names (`paths`)."""
