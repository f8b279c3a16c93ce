"""Outcomes: did personalization work? Pure functions over pandas frames (orders, segments,
the app's event log) that return tables with a sample size beside every number and a
confidence interval beside every rate."""
