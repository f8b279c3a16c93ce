"""Prompt templates: files, versions and labels, metrics, and the grounding check of generated
text."""
