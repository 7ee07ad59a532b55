"""The local control socket: how the CLI talks to a running gateway (JSON lines over a UNIX socket)."""
