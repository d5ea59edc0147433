"""Filter families, one sub-package each: the operator, its model schema and its engine.

``pafu``: Pixel Adaptive Filtering Units (a selector picks one kernel of a learned
bank per pixel). ``pac``: pixel-adaptive convolution (a shared kernel modulated by
guidance features).
"""
