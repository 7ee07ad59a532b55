"""The `dcgate` command line."""
