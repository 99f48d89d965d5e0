"""Files a language loads before the code (see `sandbox.languages.Language.prelude`)."""
