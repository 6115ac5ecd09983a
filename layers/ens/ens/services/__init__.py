"""One module per function's service logic: settings-free, Lambda-free, written against Protocols."""
