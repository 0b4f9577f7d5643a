"""The embedded sandbox: real HTTP servers for Cliniko and Nutshell on loopback, seeded with a synthetic clinic."""
