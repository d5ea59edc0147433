"""Quality measurement: PSNR variants, MATLAB-compatible bicubic resize, and the
test protocols behind ``pafu evaluate``."""
