"""Training (needs the optional ``train`` extra: PyTorch).

``common``: what every family's training shares (schedules, checkpoints,
provenance, least squares); ``data``: training pictures, patches, noise and
colour augmentation (NumPy only); one sub-package per filter family
(``pafu``).
"""
