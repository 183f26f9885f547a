"""Built-in strategies; importing this package registers them."""
from search.strategies import llmatic, random_search, rea  # noqa: F401  (registers "llmatic", "random", "rea")
from search.strategies import fairnad  # noqa: F401,E402  (registers "fairnad")
