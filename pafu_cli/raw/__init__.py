"""RAW files: reading with rawpy (LibRaw), probing LibRaw's matrix, and rendering like
LibRaw around a PAFU demosaick."""
