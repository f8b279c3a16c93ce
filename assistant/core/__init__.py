"""The ground floor: settings, user-facing errors, shared schemas, the YAML reader. Imports
nothing else from Tailor."""
