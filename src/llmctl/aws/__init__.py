"""Thin adapters over boto3; every function takes its client, so tests point it at a double."""
