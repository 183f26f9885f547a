"""Built-in strategies; importing this package registers them
("fairnad", "llmatic", "random", "rea", "local", "prior", "tpe", "nsga2", "swnas"). "tpe" and
"nsga2" need Optuna, an optional extra imported only when such a strategy is built."""

from archlore.search.strategies import (  # noqa: F401
    fairnad,
    llmatic,
    local_search,
    nsga2,
    optuna_tpe,
    prior_order,
    random_search,
    rea,
)
from archlore.search.swnas import strategy as _swnas  # noqa: F401
