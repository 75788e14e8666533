"""The Kopf adapter: thin handlers that parse, call the kernel and the pure builders, and patch."""
