"""Recommenders, their offline evaluation, profiles, and recommendations for a person in the
chat."""
