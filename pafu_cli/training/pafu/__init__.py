"""Training of the ``pafu`` family: the network (``module``), the loop and its
configuration (``loop``), and the least-squares refits, selector polishing and
kernel splitting (``refit``)."""
