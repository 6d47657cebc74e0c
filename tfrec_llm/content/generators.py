"""Text generators for one recommendation, all grounded in its `Explanation`.

- `TemplateGenerator` (the default): no model; "Because you watched Alien and Blade Runner
  (shared: Sci-Fi)."
- `TransformersGenerator`: a ``transformers`` TF causal LM (or seq2seq model) loaded from a
  local folder, offline; its prompt (`build_prompt`) is built from the evidence only.
- `HttpGenerator`: POSTs the prompt and the evidence as JSON to a text service, with a timeout.

Every generator but the template runs through `GroundedGenerator.generate`: any error, timeout,
empty answer or text that fails the faithfulness check (`FaithfulnessChecker`) is replaced by
the template, and the result says so (``source`` and ``rejected``).

Example:
    >>> generator = HttpGenerator("http://127.0.0.1:8080/generate", timeout=2.0)
    >>> result = generator.generate(explanation)
    >>> result.text, result.source, result.rejected
"""

from __future__ import annotations

import abc
import dataclasses
import json
import logging
import urllib.request
from typing import Any

from tfrec_llm.content.evidence import Explanation
from tfrec_llm.content.faithfulness import FaithfulnessChecker, title_variants

logger = logging.getLogger(__name__)

TEMPLATE = "template"


@dataclasses.dataclass(frozen=True)
class GeneratedText:
    """A generated text and where it came from.

    Attributes:
        text: The text to show.
        source: ``"template"``, or the generator's name when its own text was kept.
        rejected: Why the generator's own text was not used (empty when it was, or for the
            template itself).
    """

    text: str
    source: str
    rejected: tuple[str, ...] = ()


def _join(names: list[str]) -> str:
    """``A``, ``A and B``, ``A, B and C``."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


class TemplateGenerator:
    """The model-free explanation: the top evidence titles and the shared categories.

    Args:
        max_titles: Evidence items named at most.
    """

    name = TEMPLATE

    def __init__(self, max_titles: int = 2) -> None:
        self.max_titles = max_titles

    def render(self, explanation: Explanation) -> str:
        """``Because you watched A and B (shared: Sci-Fi, Action).``: the top titles and the categories they share with the item."""
        if not explanation.evidence:
            return f"{explanation.item.title} is popular with other users."
        named = explanation.evidence[: self.max_titles]
        titles = _join([title_variants(e.item.title)[-1] for e in named])  # "The Birdcage"
        # Only what the named items share, so that no category is pinned on the wrong title.
        common = {c for e in named for c in e.shared_categories}
        shared = [c for c in explanation.item.categories if c in common]
        return f"Because you watched {titles}" + (f" (shared: {', '.join(shared)})." if shared else ".")

    def generate(self, explanation: Explanation) -> GeneratedText:
        """The template text."""
        return GeneratedText(self.render(explanation), TEMPLATE)


def build_prompt(explanation: Explanation) -> str:
    """The prompt for a language model: the recommended item and the evidence, nothing else."""

    def describe(title: str, year: str, categories: tuple[str, ...]) -> str:
        details = ", ".join(([year] if year else []) + list(categories))
        return f"{title} ({details})" if details else title

    item = explanation.item
    lines = [f"Recommended: {describe(item.title, item.year, item.categories)}"]
    if explanation.evidence:
        watched = "; ".join(
            describe(e.item.title, e.item.year, e.item.categories) for e in explanation.evidence
        )
        lines.append(f"The user watched: {watched}")
    if explanation.shared_categories:
        lines.append(f"Shared: {', '.join(explanation.shared_categories)}")
    lines.append("Using only these facts, say in one sentence why the user may like it:")
    return "\n".join(lines) + "\n"


class GroundedGenerator(abc.ABC):
    """Base of the model and service generators: own text if faithful, else the template.

    Subclasses implement `raw`. Args:
        checker: The faithfulness check (default: one that knows no catalog, so only years
            and quoted names are checked; pass ``FaithfulnessChecker.from_facts`` of the catalog).
        fallback: The generator used instead (default `TemplateGenerator`).
    """

    name = "generator"

    def __init__(
        self, checker: FaithfulnessChecker | None = None, fallback: TemplateGenerator | None = None
    ) -> None:
        self.checker = checker or FaithfulnessChecker()
        self.fallback = fallback or TemplateGenerator()

    @abc.abstractmethod
    def raw(self, explanation: Explanation) -> str:
        """The generator's own text for ``explanation`` (may raise; may be unfaithful)."""

    def generate(self, explanation: Explanation) -> GeneratedText:
        """The generator's text when it is non-empty and faithful, else the template's."""
        try:
            text = " ".join(self.raw(explanation).split())
        except Exception as err:  # noqa: BLE001  (any failure falls back to the template)
            logger.warning("%s generator failed (%s); using the template", self.name, err)
            return dataclasses.replace(self.fallback.generate(explanation), rejected=(f"error: {err}",))
        problems = self.checker.violations(text, explanation) if text else ["empty text"]
        if problems:
            logger.info("%s text rejected (%s); using the template", self.name, "; ".join(problems))
            return dataclasses.replace(self.fallback.generate(explanation), rejected=tuple(problems))
        return GeneratedText(text, self.name)


class TransformersGenerator(GroundedGenerator):
    """A local ``transformers`` TF causal LM (or seq2seq model), greedy decoding, offline.

    Args:
        model_dir: Folder with ``config.json``, TF weights and the tokenizer files.
        max_new_tokens: Tokens generated at most.
        checker: See `GroundedGenerator`.
        fallback: See `GroundedGenerator`.
    """

    name = "transformers"

    def __init__(
        self,
        model_dir: str,
        max_new_tokens: int = 40,
        checker: FaithfulnessChecker | None = None,
        fallback: TemplateGenerator | None = None,
    ) -> None:
        super().__init__(checker, fallback)
        from transformers import AutoConfig, AutoTokenizer, TFAutoModelForCausalLM, TFAutoModelForSeq2SeqLM

        config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
        self.seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        loader = TFAutoModelForSeq2SeqLM if self.seq2seq else TFAutoModelForCausalLM
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = loader.from_pretrained(model_dir, local_files_only=True)
        self.max_new_tokens = max_new_tokens

    def raw(self, explanation: Explanation) -> str:
        """Greedy continuation of `build_prompt` (the prompt itself cut off)."""
        inputs = self.tokenizer(build_prompt(explanation), return_tensors="tf")
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        output = self.model.generate(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
        )
        tokens = output[0] if self.seq2seq else output[0, inputs["input_ids"].shape[1] :]
        return str(self.tokenizer.decode(tokens.numpy().tolist(), skip_special_tokens=True))


class HttpGenerator(GroundedGenerator):
    """A text service over HTTP: POST ``{"prompt", "evidence"}`` JSON, answer ``{"text": ...}``.

    Args:
        url: The service endpoint.
        timeout: Seconds to wait for the answer (connection and read).
        checker: See `GroundedGenerator`.
        fallback: See `GroundedGenerator`.
        headers: Extra request headers.
    """

    name = "http"

    def __init__(
        self,
        url: str,
        timeout: float = 2.0,
        checker: FaithfulnessChecker | None = None,
        fallback: TemplateGenerator | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(checker, fallback)
        self.url = url
        self.timeout = timeout
        self.headers = dict(headers or {})

    def raw(self, explanation: Explanation) -> str:
        """The service's ``text`` for the prompt and the evidence.

        Raises:
            ValueError: If the answer is not JSON with a string ``text``.
            urllib.error.URLError, TimeoutError: On HTTP or network failure, or timeout.
        """
        body = json.dumps({"prompt": build_prompt(explanation), "evidence": explanation.to_dict()}).encode()
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json", **self.headers}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
            answer: Any = json.loads(response.read().decode("utf-8"))
        if not isinstance(answer, dict) or not isinstance(answer.get("text"), str):
            raise ValueError(f"the service answered {str(answer)[:100]!r}, not {{'text': str}}")
        return str(answer["text"])


def make_generator(
    spec: str, checker: FaithfulnessChecker | None = None, timeout: float = 2.0
) -> TemplateGenerator | GroundedGenerator:
    """The generator a command-line ``spec`` names.

    Args:
        spec: ``template``; an ``http://`` or ``https://`` URL (`HttpGenerator`); else a local
            model folder (`TransformersGenerator`).
        checker: The faithfulness check of the model and service generators.
        timeout: Seconds the HTTP generator waits.

    Returns:
        The generator.
    """
    if spec == TEMPLATE:
        return TemplateGenerator()
    if spec.startswith(("http://", "https://")):
        return HttpGenerator(spec, timeout=timeout, checker=checker)
    return TransformersGenerator(spec, checker=checker)


__all__ = [
    "GeneratedText",
    "GroundedGenerator",
    "HttpGenerator",
    "TemplateGenerator",
    "TransformersGenerator",
    "build_prompt",
    "make_generator",
]
