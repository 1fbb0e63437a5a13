"""Family-agnostic building blocks (conv trunks, equalized layers, modulated convs, attention)."""
