"""YAML policies: schema, loading with `extends`, bindings, strictness, hot reload."""
