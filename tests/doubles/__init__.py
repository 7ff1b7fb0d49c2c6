"""Test doubles: servers and executables that stand in for the cloud and the cluster."""
