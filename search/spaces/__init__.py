"""Built-in search spaces; importing this package registers them."""
