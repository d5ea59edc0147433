"""Shipped PAFU models (package data of ``pafu_cli.models``); see README.md here."""
