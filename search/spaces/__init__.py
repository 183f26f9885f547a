"""Built-in search spaces; importing this package registers them."""
from archlore.search.spaces import (
    nb201,  # noqa: F401  (registers "nb201")
    open,  # noqa: F401, A004  (registers "open": the ArchSpec space)
)
