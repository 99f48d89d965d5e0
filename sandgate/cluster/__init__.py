"""Running several nodes: the local cluster (`sandgate cluster up|down`) and its engines."""
