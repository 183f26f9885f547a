"""Fair idea sampling (FairNAD): every category gets the same chance, whatever the corpus.

A draw picks a category uniformly among the non-empty ones, then an idea inside it with
weight ``w = (0.25 + valid_rate) * (1 + front_rate) * exp(-(tries - fewest_tries))`` (fewest
over the ideas in the category): the least-tried ideas come first, ideas that keep failing fade and ideas that reach the front get a modest bonus --
never how often an idea appears in the corpus or how much the LLM likes it. The sampler keeps
no state of its own: it reads ``IdeaStats``, which is rebuilt from tells on resume.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
from archlore.knowledge.schema import Idea
from archlore.search.feedback import IdeaStats


class FairIdeaSampler:
    def __init__(self, ideas: Iterable[Idea]) -> None:
        self.by_category: dict[str, list[Idea]] = {}
        for idea in sorted(ideas, key=lambda i: i.id):  # stable order, whatever the source
            self.by_category.setdefault(idea.category.value, []).append(idea)
        self.categories = sorted(self.by_category)
        self.ideas = {i.id: i for group in self.by_category.values() for i in group}

    def __len__(self) -> int:
        return len(self.ideas)

    @staticmethod
    def weight(idea: Idea, stats: IdeaStats, fewest_tries: int = 0) -> float:
        st = stats.get(idea.id)
        valid_rate = (st.valid + 1) / (st.tries + 2)  # Laplace: untried ideas start at 0.5
        front_rate = st.front_entries / st.tries if st.tries else 0.0
        return (0.25 + valid_rate) * (1.0 + front_rate) * math.exp(-(st.tries - fewest_tries))

    def draw(self, rng: np.random.Generator, stats: IdeaStats,
             allowed: Callable[[Idea], bool] | None = None) -> Idea | None:
        """One idea, or None if no idea passes ``allowed``.

        ``allowed`` narrows the pool (e.g. ideas expected to cut MACs); categories left empty
        by it drop out, and the remaining ones stay equally likely.
        """
        pools = {c: [i for i in self.by_category[c] if allowed is None or allowed(i)]
                 for c in self.categories}
        cats = [c for c in self.categories if pools[c]]
        if not cats:
            return None
        pool = pools[cats[int(rng.integers(len(cats)))]]
        fewest = min(stats.tries(i.id) for i in pool)
        w = np.array([self.weight(i, stats, fewest) for i in pool])
        return pool[int(rng.choice(len(pool), p=w / w.sum()))]


class BanditIdeaSampler(FairIdeaSampler):
    """Feedback that re-weights: Thompson sampling over ideas inside a fairness floor.

    Each idea has a Beta(1 + successes, 1 + failures) posterior of "its child beat its
    parent on the quality objective" (``rewards``: idea id -> (successes, trials), kept by the
    strategy from tells). With probability ``floor`` a draw is the paper's fair draw
    (category uniform, then :meth:`FairIdeaSampler.weight` inside it) -- so every category
    keeps at least ``floor / n_categories`` of the draws and exploration never dies;
    otherwise the idea with the highest Thompson sample among all allowed ideas is drawn.
    Stateless like the fair sampler: it reads the stats and rewards it is handed.
    """

    def __init__(self, ideas: Iterable[Idea], floor: float = 0.5) -> None:
        super().__init__(ideas)
        if not 0.0 <= floor <= 1.0:
            raise ValueError(f"floor must be in [0, 1], not {floor}")
        self.floor = floor

    def draw(self, rng: np.random.Generator, stats: IdeaStats,  # type: ignore[override]
             allowed: Callable[[Idea], bool] | None = None,
             rewards: dict[str, tuple[int, int]] | None = None) -> Idea | None:
        if rng.random() < self.floor or not rewards:
            return super().draw(rng, stats, allowed)
        pool = [i for c in self.categories for i in self.by_category[c]
                if allowed is None or allowed(i)]
        if not pool:
            return None
        s = np.array([rewards.get(i.id, (0, 0))[0] for i in pool], dtype=float)
        n = np.array([rewards.get(i.id, (0, 0))[1] for i in pool], dtype=float)
        theta = rng.beta(1.0 + s, 1.0 + np.maximum(n - s, 0.0))
        return pool[int(np.argmax(theta))]
