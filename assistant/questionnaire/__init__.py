"""The guided questionnaire: spec, free-text parsing, engine, wording."""
