"""Image files: the one boundary to imageio, tifffile and the PNG codec."""
