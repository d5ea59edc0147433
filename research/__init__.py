"""Research experiments kept with their tests but not shipped in the wheel
(``setup.cfg`` lists the packages; this folder is not one of them)."""
