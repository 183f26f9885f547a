"""Targeted requests -> a structured ``Goal`` (dataset, cost caps, required/excluded categories).

``parse_goal(text)`` is rule-based (offline); ``parse_goal(text, model=llm)`` asks the model for
JSON matching the Goal schema, validates it, retries once with the validation error, and falls
back to the rules if the second answer is still invalid (``Goal.source`` says which was used).

archlore counts FLOPs = MACs (multiply-accumulates per image): "50 MFLOPs" and "50 MMACs" both
mean ``max_mmacs=50``.
"""

from __future__ import annotations

import json
import re

from archlore.agent import prompts
from archlore.agent.llm.base import BudgetExceeded, LLMError
from archlore.knowledge.schema import Category
from archlore.search.protocol import Constraints
from pydantic import BaseModel, Field, ValidationError, field_validator

# dataset -> (in_channels, image_size, num_classes)
DATASETS: dict[str, tuple[int, int, int]] = {
    "digits": (1, 8, 10),
    "cifar10": (3, 32, 10),
    "cifar100": (3, 32, 100),
    "imagenet16-120": (3, 16, 120),
    "mnist": (1, 28, 10),
    "fashion-mnist": (1, 28, 10),
}

_DATASET_PATTERNS = (  # order matters: cifar100 before cifar10
    ("cifar100", r"cifar[\s_-]?100\b"),
    ("cifar10", r"cifar[\s_-]?10\b|\bcifar\b"),
    ("imagenet16-120", r"imagenet[\s_-]?16(?:[\s_-]?120)?\b|\bimagenet16"),
    ("fashion-mnist", r"fashion[\s_-]?mnist\b"),
    ("mnist", r"\bmnist\b"),
    ("digits", r"\bdigits?\b|\b8\s*x\s*8\b"),
)

_CATEGORY_WORDS: dict[Category, tuple[str, ...]] = {
    Category.ATTENTION: ("attention", "squeeze-and-excitation", "squeeze and excitation",
                         "squeeze-excitation", "se block", "se-block", "cbam", "transformer",
                         "self-attention"),
    Category.CONNECTIVITY: ("residual", "skip connection", "skip-connection", "shortcut",
                            "dense connection", "densely connected", "connectivity"),
    Category.NORMALIZATION: ("normalization", "normalisation", "batchnorm", "batch norm",
                             "layernorm", "layer norm", "groupnorm"),
    Category.ACTIVATION: ("activation", "gelu", "swish", "silu", "mish", "hardswish"),
    Category.REGULARIZATION: ("dropout", "stochastic depth", "drop path", "droppath",
                              "regularization", "regularisation"),
    Category.DOWNSAMPLING: ("downsampling", "pooling", "strided", "anti-aliased", "blurpool"),
    Category.BLOCK_TYPE: ("depthwise", "separable", "inverted residual", "bottleneck",
                          "mbconv", "convnext", "ghost module", "block type"),
    Category.SCALING: ("width multiplier", "compound scaling", "scaling"),
    Category.STAGE_LAYOUT: ("stage layout", "stages"),
    Category.TRAINING: ("augmentation", "label smoothing", "training recipe", "mixup"),
}
_NEGATION = re.compile(r"\b(without|no|not|avoid|avoiding|excluding|exclude|never|w/o|"
                       r"don't|dont|free of)\b[^,;.]*$", re.I)
_CLAUSE_BREAK = re.compile(r"[,;.]|\b(but|and|with|that|which|using|uses|use)\b", re.I)
# "100,000" / "1,000,000" are thousands separators; "1,5" is a decimal comma.
_NUMBER = r"(\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|\d+(?:[.,]\d+)?(?:e[+-]?\d+)?)"
_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_MACS_RE = re.compile(
    _NUMBER + r"\s*(k|thousand|m|million|g|b|billion)?[\s-]*(?:m?flops?|macs?|mult[\s-]?adds?|"
    r"madds?|multiply[\s-]accumulates?)\b", re.I)
_MACS_PREFIXED_RE = re.compile(_NUMBER + r"[\s-]*(mflops?|mmacs?|gflops?|gmacs?|kflops?|kmacs?)\b",
                               re.I)
_PARAMS_RE = re.compile(
    _NUMBER + r"\s*(k|thousand|m|million)?[\s-]*(?:params?|parameters?|weights)\b", re.I)


GOAL_MAX_TOKENS = 256  # the JSON goal is ~60 tokens; a cap stops runaway answers


class GoalParseError(ValueError):
    """The request cannot be turned into a goal (e.g. an unsupported dataset)."""


class Goal(BaseModel):
    """A targeted request. ``max_mmacs`` is millions of MACs per image (FLOPs = MACs)."""

    dataset: str | None = None
    max_mmacs: float | None = Field(None, gt=0)
    max_params: int | None = Field(None, gt=0)
    required_categories: list[Category] = Field(default_factory=list)
    excluded_categories: list[Category] = Field(default_factory=list)
    text: str = ""
    source: str = "rules"  # "rules", "llm", "llm+rules", or "rules (llm answer invalid: ...)"
    # where the LLM's parse disagreed with the request and how it was resolved (for display)
    notes: list[str] = Field(default_factory=list)

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str | None) -> str | None:
        if v is None:
            return None
        key = v.lower().replace("_", "-").replace(" ", "")
        key = {"cifar-10": "cifar10", "cifar-100": "cifar100", "imagenet16": "imagenet16-120",
               "imagenet-16-120": "imagenet16-120"}.get(key, key)
        if key not in DATASETS:
            raise ValueError(f"unknown dataset {v!r}; known: {', '.join(DATASETS)}")
        return key

    def constraints(self, default_dataset: str = "digits") -> Constraints:
        """Search constraints for this goal (input shape from the dataset)."""
        name = self.dataset or default_dataset
        in_channels, size, classes = DATASETS[name]
        return Constraints(dataset=name, in_channels=in_channels, image_size=size,
                           num_classes=classes, max_mmacs=self.max_mmacs,
                           max_params=self.max_params)

    def instruction(self) -> str:
        """The goal as an instruction for LLM mutators."""
        parts = [f"User request: {self.text.strip()}"] if self.text.strip() else []
        if self.required_categories:
            parts.append("The network must use: "
                         + ", ".join(c.value for c in self.required_categories) + ".")
        if self.excluded_categories:
            parts.append("The network must not use: "
                         + ", ".join(c.value for c in self.excluded_categories) + ".")
        return " ".join(parts)


def parse_goal(text: str, model=None) -> Goal:
    """Turn a free-text request into a Goal (rules offline, or ``model`` with a JSON schema)."""
    if not text or not text.strip():
        raise GoalParseError("the request is empty; say what network you want, e.g. "
                             "'a CIFAR-10 network under 50 MFLOPs that uses attention'")
    if model is None:
        return parse_goal_rules(text)
    return _parse_goal_llm(text, model)


def parse_goal_rules(text: str) -> Goal:
    low = text.lower()
    dataset = next((name for name, pat in _DATASET_PATTERNS if re.search(pat, low)), None)
    if dataset is None and re.search(r"\bimagenet\b|\bsvhn\b|\bstl", low):
        word = re.search(r"\bimagenet\b|\bsvhn\b|\bstl\w*", low).group(0)
        raise GoalParseError(f"dataset {word!r} is not supported; use one of "
                             f"{', '.join(DATASETS)}")
    required: list[Category] = []
    excluded: list[Category] = []
    for category, words in _CATEGORY_WORDS.items():
        for word in words:
            for m in re.finditer(r"\b" + re.escape(word), low):
                if _negated(low[:m.start()]):
                    if category not in excluded:
                        excluded.append(category)
                elif category not in required:
                    required.append(category)
    # "without residual ... with residual" keeps the later wish; excluded wins on a tie.
    required = [c for c in required if c not in excluded]
    return Goal(dataset=dataset, max_mmacs=_parse_macs(text), max_params=_parse_params(text),
                required_categories=required, excluded_categories=excluded, text=text.strip())


def _negated(before: str) -> bool:
    # Only the current clause counts: "without dropout, with attention" negates dropout only.
    breaks = list(_CLAUSE_BREAK.finditer(before))
    clause = before[breaks[-1].end():] if breaks else before
    if breaks and breaks[-1].group(0).lower() in ("with", "using", "uses", "use", "that",
                                                   "which"):
        # "with no attention": the break word itself starts the clause we look at
        clause = before[breaks[-1].start():]
    return bool(_NEGATION.search(clause))


def _num(s: str) -> float:
    if _THOUSANDS.fullmatch(s):
        return float(s.replace(",", ""))
    return float(s.replace(",", "."))


def _parse_macs(text: str) -> float | None:
    m = _MACS_PREFIXED_RE.search(text)
    if m:
        value, unit = _num(m.group(1)), m.group(2).lower()[0]
        return value * {"k": 1e-3, "m": 1.0, "g": 1e3}[unit]
    m = _MACS_RE.search(text)
    if not m:
        return None
    value, unit = _num(m.group(1)), (m.group(2) or "").lower()
    scale = {"k": 1e-3, "thousand": 1e-3, "m": 1.0, "million": 1.0, "g": 1e3, "b": 1e3,
             "billion": 1e3, "": 1e-6}[unit]
    return value * scale


def _parse_params(text: str) -> int | None:
    m = _PARAMS_RE.search(text)
    if not m:
        return None
    value, unit = _num(m.group(1)), (m.group(2) or "").lower()
    return int(round(value * {"k": 1e3, "thousand": 1e3, "m": 1e6, "million": 1e6, "": 1}[unit]))


def _goal_schema() -> dict:
    cats = [c.value for c in Category]
    return {"type": "json_schema", "json_schema": {"name": "goal", "strict": False, "schema": {
        "type": "object",
        "properties": {
            "dataset": {"type": ["string", "null"], "enum": [*DATASETS, None]},
            "max_mmacs": {"type": ["number", "null"]},
            "max_params": {"type": ["integer", "null"]},
            "required_categories": {"type": "array", "items": {"type": "string", "enum": cats}},
            "excluded_categories": {"type": "array", "items": {"type": "string", "enum": cats}},
            "text": {"type": "string"},
        },
        "required": ["dataset", "max_mmacs", "max_params", "required_categories",
                     "excluded_categories", "text"]}}}


def _parse_goal_llm(text: str, model) -> Goal:
    system = prompts.render("goal_system", datasets=", ".join(DATASETS),
                            categories=", ".join(c.value for c in Category))
    messages = [{"role": "system", "content": system}, {"role": "user", "content": text}]
    error = ""
    response_format: dict | None = _goal_schema()
    for _attempt in range(2):
        try:
            answer = model.chat(messages, temperature=0.0, max_tokens=GOAL_MAX_TOKENS,
                                response_format=response_format).text
        except BudgetExceeded:
            raise
        except LLMError as e:
            if response_format is None or "HTTP 4" not in str(e):
                raise
            # some servers reject json_schema; the system prompt alone asks for JSON
            response_format = None
            answer = model.chat(messages, temperature=0.0, max_tokens=GOAL_MAX_TOKENS).text
        try:
            data = json.loads(_json_object(answer))
            data["text"] = text.strip()
            data.pop("source", None)
            data.pop("notes", None)
            for cap in ("max_mmacs", "max_params"):  # small models write 0 / "" for "no cap"
                if data.get(cap) in (0, 0.0, "", "null", "none"):
                    data[cap] = None
            llm_goal = Goal.model_validate(data).model_copy(update={"source": "llm"})
            return check_goal(llm_goal, text)
        except (json.JSONDecodeError, ValidationError, ValueError, TypeError) as e:
            error = " ".join(str(e).split())[:300]
            messages = messages + [
                {"role": "assistant", "content": answer},
                {"role": "user", "content": f"That is not a valid goal object: {error}. "
                                            "Answer with the corrected JSON object only."}]
    goal = parse_goal_rules(text)
    return goal.model_copy(update={"source": f"rules (llm answer invalid: {error})"})


_ANY_NUMBER = re.compile(r"(\d+(?:[.,]\d+)?)\s*(k|m|g|b)?", re.I)


_WORD_NUMBERS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
_WORD_NUMBERS.update({w: 10 * i for i, w in enumerate(
    "twenty thirty forty fifty sixty seventy eighty ninety".split(), 2)})
_WORD_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9}


def _spelled_numbers(text: str) -> list[float]:
    """Numbers written in words ("fifty", "two hundred thousand")."""
    out, current, total, seen = [], 0, 0, False
    for word in re.findall(r"[a-z]+", text.lower()) + [""]:
        if word in _WORD_NUMBERS:
            current += _WORD_NUMBERS[word]
            seen = True
        elif word in _WORD_SCALES and seen:
            if _WORD_SCALES[word] == 100:
                current *= 100
            else:
                total += current * _WORD_SCALES[word]
                current = 0
        elif word == "and" and seen:
            continue
        else:
            if seen:
                out.append(float(total + current))
            current, total, seen = 0, 0, False
    return out


def _number_in_text(value: float, text: str) -> bool:
    """Does ``value`` appear in ``text`` as a number, in any unit scale (0.2 MFLOPs may come
    back as 200000 MACs or 0.2 MMACs; "100k" as 100000; "fifty megaflops" as 50)?"""
    found: list[tuple[float, float]] = [(n, 1.0) for n in _spelled_numbers(text)]
    for m in _ANY_NUMBER.finditer(text.replace(",", "")):
        try:
            n = float(m.group(1))
        except ValueError:
            continue
        found.append((n, {"k": 1e3, "m": 1e6, "g": 1e9, "b": 1e9}.get(
            (m.group(2) or "").lower(), 1.0)))
    for n, unit in found:
        for scale in (1.0, 1e-9, 1e-6, 1e-3, 1e3, 1e6, 1e9):
            for base in (n, n * unit):
                if base and abs(base * scale - value) <= 1e-6 * max(abs(value), 1.0):
                    return True
    return False


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 0.01 * max(abs(a), abs(b))


def check_goal(llm_goal: Goal, text: str) -> Goal:
    """Check an LLM-parsed goal against the request: the rule parse and the text itself.

    Small models echo their prompt's examples (``cifar10``, 50 MMACs, 100k params) for a
    request that says none of them. Rules: a dataset or number the rules parser found wins
    over a different LLM value; an LLM dataset or number that the text does not contain is
    dropped; an LLM category is kept only when the request mentions it (its name or one of the
    rules' words for it) and the rules do not put it on the other side; the rules'
    categories are always kept. Every disagreement is listed in ``Goal.notes``; ``source`` becomes
    ``"llm+rules"`` when any was resolved. The lead's ``ask`` calls this through
    ``parse_goal(text, model=...)``, nothing else to wire."""
    try:
        rules = parse_goal_rules(text)
    except GoalParseError:
        rules = Goal(text=text.strip())
    notes: list[str] = []
    low = text.lower()
    update: dict = {}
    g = llm_goal
    if rules.dataset is not None and g.dataset != rules.dataset:
        notes.append(f"dataset: LLM said {g.dataset!r}, the request says {rules.dataset!r}; "
                     f"using {rules.dataset!r}")
        update["dataset"] = rules.dataset
    elif rules.dataset is None and g.dataset is not None \
            and g.dataset.replace("-", "") not in low.replace("-", "").replace(" ", ""):
        notes.append(f"dataset: LLM said {g.dataset!r}, which the request does not name; "
                     f"dropped")
        update["dataset"] = None
    for name, unit in (("max_mmacs", "MMACs"), ("max_params", "params")):
        got, want = getattr(g, name), getattr(rules, name)
        if want is not None and (got is None or not _close(float(got), float(want))):
            notes.append(f"{name}: LLM said {got}, the request says {want:g} {unit}; "
                         f"using {want:g}")
            update[name] = want
        elif want is None and got is not None and not _number_in_text(float(got), text):
            notes.append(f"{name}: LLM said {got:g}, a number the request does not contain; "
                         f"dropped")
            update[name] = None
    def named(c: Category) -> bool:  # the request itself mentions the category
        return c.value.replace("_", " ") in low or any(w in low for w in
                                                       _CATEGORY_WORDS.get(c, ()))

    req = [c for c in g.required_categories if c not in rules.excluded_categories and named(c)]
    req += [c for c in rules.required_categories if c not in req]
    exc = [c for c in g.excluded_categories if c not in rules.required_categories and named(c)]
    exc += [c for c in rules.excluded_categories if c not in exc]
    if set(req) != set(g.required_categories):
        notes.append("required categories: LLM " + (", ".join(c.value for c in
                     g.required_categories) or "none") + "; using " +
                     (", ".join(c.value for c in req) or "none"))
    if set(exc) != set(g.excluded_categories):
        notes.append("excluded categories: LLM " + (", ".join(c.value for c in
                     g.excluded_categories) or "none") + "; using " +
                     (", ".join(c.value for c in exc) or "none"))
    update.update(required_categories=req, excluded_categories=exc)
    if notes:
        update.update(source="llm+rules", notes=notes)
    return Goal.model_validate(g.model_dump() | update)


def _json_object(answer: str) -> str:
    """The outermost {...} of an answer (models often wrap JSON in fences or prose)."""
    start, end = answer.find("{"), answer.rfind("}")
    if start < 0 or end <= start:
        raise ValueError(f"no JSON object in the answer {answer[:80]!r}")
    return answer[start:end + 1]
