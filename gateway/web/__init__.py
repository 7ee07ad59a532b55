"""The web console: the responsible officer's screen, served by the gateway itself on the LAN.

Console accounts and their argon2id hashes (`users`), server-side sessions with CSRF tokens
(`sessions`), sign-in throttling (`throttle`), and the Starlette pages that call the same operations
as the CLI and the control socket. docs/console.md is the contract between these modules.
"""
