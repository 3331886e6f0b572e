"""The endpoint checker that ships into the cluster: standard library only (see endpoint_checker.py)."""
