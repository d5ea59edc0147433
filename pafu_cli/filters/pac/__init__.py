"""PAC (pixel-adaptive convolution): the second filter family. Its operators, model
schema and engine land here (see ``../shared/PAC.md`` and the PAC issues)."""
