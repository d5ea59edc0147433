"""Training of PAFU models (needs the optional ``train`` extra: PyTorch)."""
