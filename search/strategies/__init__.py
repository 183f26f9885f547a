"""Built-in strategies; importing this package registers them
("fairnad", "llmatic", "random", "rea")."""

from archlore.search.strategies import fairnad, llmatic, random_search, rea  # noqa: F401
