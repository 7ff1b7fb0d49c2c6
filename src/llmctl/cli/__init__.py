"""Thin Typer commands: parse, call one action, render the result."""
