"""The pluggable generators: a tiny random TF GPT-2 loaded from a folder, and an HTTP service."""

import http.server
import json
import re
import threading

import pytest

from tfrec_llm.content.evidence import Explanation, HistoryEvidence, ItemFacts
from tfrec_llm.content.faithfulness import FaithfulnessChecker
from tfrec_llm.content.generators import (
    HttpGenerator,
    TemplateGenerator,
    TransformersGenerator,
    build_prompt,
    make_generator,
)

BLADE = ItemFacts("541", "Blade Runner", "1982", ("Film-Noir", "Sci-Fi"))
ALIEN = ItemFacts("183", "Alien", "1979", ("Horror", "Sci-Fi"))
HEAT = ItemFacts("99", "Heat", "1995", ("Crime", "Thriller"))
CHECKER = FaithfulnessChecker.from_facts([BLADE, ALIEN, HEAT])


def explanation():
    return Explanation("7", BLADE, "similarity", (HistoryEvidence.between(ALIEN, BLADE, 0.8),), 0.5)


# ---------------------------------------------------------------- a tiny random GPT-2

# Neutral words plus the prompt's own words: whatever the random model writes, it can name
# only what the evidence holds.
WORDS = (
    "recommended : blade runner ( 1982 , film - noir sci fi ) the user watched alien 1979 horror "
    "shared using only these facts say in one sentence why may like it . you a dark great"
).split()


@pytest.fixture(scope="module")
def tiny_gpt2_dir(tmp_path_factory):
    """A randomly initialised TFGPT2LMHeadModel and a word-level tokenizer, saved to a folder."""
    import tensorflow as tf
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import GPT2Config, PreTrainedTokenizerFast, TFGPT2LMHeadModel

    folder = str(tmp_path_factory.mktemp("tiny_gpt2"))
    vocab = {"<|endoftext|>": 0, "[UNK]": 1}
    for word in dict.fromkeys(WORDS):
        vocab[word] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()  # words and punctuation runs
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="[UNK]",
        eos_token="<|endoftext|>",
        model_input_names=["input_ids", "attention_mask"],  # as GPT-2's own tokenizer
    )
    tokenizer.save_pretrained(folder)
    tf.keras.utils.set_random_seed(0)
    config = GPT2Config(
        vocab_size=len(vocab), n_positions=128, n_embd=16, n_layer=2, n_head=2, eos_token_id=0, bos_token_id=0
    )
    model = TFGPT2LMHeadModel(config)
    model(model.dummy_inputs)
    model.save_pretrained(folder)
    return folder


def pieces(text):
    """The text as the word-level tokenizer splits it (lower-cased words and punctuation runs)."""
    return re.findall(r"\w+|[^\w\s]+", text.lower())


def test_transformers_generator_loads_a_local_tf_gpt2_and_continues_the_evidence_prompt(tiny_gpt2_dir):
    from transformers import AutoTokenizer, TFGPT2LMHeadModel

    assert isinstance(make_generator(tiny_gpt2_dir), TransformersGenerator)  # a folder: a local model
    generator = TransformersGenerator(tiny_gpt2_dir, max_new_tokens=8, checker=CHECKER)
    assert not generator.seq2seq and type(generator.model).__name__ == "TFGPT2LMHeadModel"
    e = explanation()
    text = generator.raw(e)
    # Reference: the same folder loaded by hand, greedy decoding of the same prompt.
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt2_dir)
    model = TFGPT2LMHeadModel.from_pretrained(tiny_gpt2_dir)
    prompt = build_prompt(e)
    ids = tokenizer(prompt, return_tensors="tf")
    assert set(ids) == {"input_ids", "attention_mask"}
    out = model.generate(**ids, max_new_tokens=8, do_sample=False, pad_token_id=0)
    new = out[0, ids["input_ids"].shape[1] :].numpy().tolist()
    assert len(new) >= 1
    assert text == tokenizer.decode(new, skip_special_tokens=True)
    assert set(text.split()) <= set(WORDS)
    result = generator.generate(e)
    assert result.source == "transformers" and result.text == " ".join(text.split())
    # The prompt holds the evidence and nothing else: every prompt word is a known word.
    assert set(pieces(prompt)) <= set(WORDS)
    assert 1 not in ids["input_ids"].numpy()[0].tolist()  # no [UNK]: the tokenizer covers the prompt


# ---------------------------------------------------------------- an HTTP service on loopback


class Service:
    """A loopback HTTP server answering per path; /hang answers only once released."""

    def __init__(self):
        self.requests = []
        self.release = threading.Event()
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                service.requests.append((self.path, body))
                if self.path == "/hang":
                    service.release.wait(10)
                answers = {
                    "/good": (200, {"text": "Because you watched Alien, a Horror Sci-Fi film."}),
                    "/year": (200, {"text": "Because you watched Alien (1995)."}),
                    "/title": (200, {"text": "Because you watched Heat."}),
                    "/shape": (200, {"answer": "no text field"}),
                    "/error": (500, {"text": "Because you watched Alien."}),
                    "/hang": (200, {"text": "Because you watched Alien."}),
                }
                status, answer = answers[self.path]
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout)
                    pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def service():
    running = Service()
    yield running
    running.close()


def test_http_generator_keeps_a_faithful_answer_and_sends_only_the_evidence(service):
    assert isinstance(make_generator("template"), TemplateGenerator)
    made = make_generator(service.url("/good"), CHECKER, timeout=1.5)
    assert isinstance(made, HttpGenerator) and made.timeout == 1.5 and made.checker is CHECKER
    result = HttpGenerator(service.url("/good"), timeout=5, checker=CHECKER).generate(explanation())
    assert (result.text, result.source) == ("Because you watched Alien, a Horror Sci-Fi film.", "http")
    ((path, body),) = service.requests
    assert path == "/good" and body["prompt"] == build_prompt(explanation())
    assert body["evidence"]["evidence"][0]["item"]["title"] == "Alien"


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/year", "year not in the evidence: 1995"),
        ("/title", "title not in the evidence: Heat"),
        ("/shape", "error: the service answered"),
        ("/error", "error: HTTP Error 500"),
    ],
)
def test_http_generator_falls_back_to_the_template(service, path, reason):
    result = HttpGenerator(service.url(path), timeout=5, checker=CHECKER).generate(explanation())
    assert result.source == "template" and result.text == TemplateGenerator().render(explanation())
    assert any(r.startswith(reason) for r in result.rejected), result.rejected


def test_http_generator_times_out_and_falls_back(service):
    result = HttpGenerator(service.url("/hang"), timeout=0.3, checker=CHECKER).generate(explanation())
    service.release.set()
    assert result.source == "template"
    assert len(result.rejected) == 1 and "timed out" in result.rejected[0]
