"""Built-in strategies; importing this package registers them
("fairnad", "llmatic", "random", "rea", "swnas")."""

from archlore.search.strategies import fairnad, llmatic, random_search, rea  # noqa: F401
from archlore.search.swnas import strategy as _swnas  # noqa: F401
