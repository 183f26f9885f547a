"""timm-style backend registry: ``register_backend``, ``list_backends``, ``create_model``."""

from __future__ import annotations

from collections.abc import Callable

from archlore.agent.llm.base import Model

_BACKENDS: dict[str, Callable[..., Model]] = {}


def register_backend(name: str) -> Callable[[Callable[..., Model]], Callable[..., Model]]:
    """Decorator: ``@register_backend("openai") def _make(**cfg) -> Model``."""

    def wrap(factory: Callable[..., Model]) -> Callable[..., Model]:
        if name in _BACKENDS:
            raise ValueError(f"LLM backend {name!r} is already registered")
        _BACKENDS[name] = factory
        return factory

    return wrap


def list_backends() -> list[str]:
    return sorted(_BACKENDS)


def create_model(name: str, **cfg) -> Model:
    """Build backend ``name``; ``cfg`` are its keyword options (see each factory).

    ``record=PATH`` wraps any backend in a RecordingModel writing to that cassette.
    """
    if name not in _BACKENDS:
        raise ValueError(f"unknown LLM backend {name!r}; available: {', '.join(list_backends())}")
    record = cfg.pop("record", None)
    model = _BACKENDS[name](**cfg)
    if record:
        from archlore.agent.llm.replay import RecordingModel

        model = RecordingModel(model, record)
    return model


@register_backend("openai")
def _openai(**cfg) -> Model:
    """Options: base_url, api_key, model, timeout_s, max_retries, max_total_tokens,
    max_cost_usd (None values fall back to env / defaults)."""
    from archlore.agent.llm.openai_backend import OpenAIModel

    return OpenAIModel(**{k: v for k, v in cfg.items() if v is not None})


@register_backend("replay")
def _replay(cassette: str | None = None, **_ignored) -> Model:
    from archlore.agent.llm.replay import ReplayModel
    from archlore.agent.llm.settings import LLMSettings

    path = cassette or LLMSettings().cassette
    if not path:
        raise ValueError("--llm replay needs a cassette (--cassette PATH or ARCHLORE_LLM_CASSETTE)")
    return ReplayModel(path)


@register_backend("scripted")
def _scripted(answers: list[str] | None = None, **_ignored) -> Model:
    from archlore.agent.llm.scripted import ScriptedModel

    return ScriptedModel(answers=answers)
