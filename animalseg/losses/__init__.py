"""Semantic losses (ignore-index aware), the boundary BCE and their weighted composite."""
