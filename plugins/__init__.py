"""Built-in plugins. Each is an entry point of the root distribution and is enabled by name."""
