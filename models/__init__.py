"""Shipped PAFU models (installed as the data package ``pafu_cli.shipped_models``); see README.md here."""
