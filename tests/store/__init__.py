"""Tests of the stores: one contract suite (contract.py) run against every implementation."""
