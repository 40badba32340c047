"""The LLM judge: label checks that keep quotas exact, constrained or parsed answers, journaled like everything else.

Builds run the real builder against ``scripted_judge.ScriptedJudgeLLM`` over HTTP: 20% of its tickets
are about another class than asked, recognisable from their text, and it judges texts truthfully.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from scripted_judge import LABELS, TICKETS_RECIPE, ScriptedJudgeLLM, plain_label_reply, topic_of

from attrprompt_builder import cli
from attrprompt_builder.errors import BudgetExceededError, ConfigError
from attrprompt_builder.generation.estimate import estimate
from attrprompt_builder.pipeline import build_dataset, make_builder
from attrprompt_builder.recipe.model import load_recipe
from attrprompt_builder.recipe.presets import load_preset
from attrprompt_builder.verify.judge import JudgeSpec, label_question, parse_labels, parse_yes_no

N = 8
# The scripted server puts a reply on another class by a hash of its prompt and seed: with seed 2, 10 of the
# first 44 draws are (seed 0 happens to draw only 4), close to its 20%.
SEED = 2
CHAT = "/v1/chat/completions"
NEWS = [("world", "world"), ("sports", "sports"), ("business", "business"), ("sci_tech", "science and technology")]


@pytest.fixture
def judge_llm():
    with ScriptedJudgeLLM(off_class_rate=0.2) as server:
        yield server


@pytest.fixture
def no_grammar_llm():
    """The same model behind a TGI started without grammar support: a response_format gets 422."""
    with ScriptedJudgeLLM(off_class_rate=0.2, grammar_support=False) as server:
        yield server


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "tickets.yaml"
    path.write_text(TICKETS_RECIPE, encoding="utf-8")
    return str(path)


def build(recipe, server, tmp_path, tag="first", **options):
    options = {"samples_per_class": N, "seed": SEED, "embedder": "ngram", "max_concurrency": 8, **options}
    builder = make_builder(
        recipe, endpoint=server.url, cache_dir=str(tmp_path / tag), journal_dir=str(tmp_path / "journal"), **options
    )
    return builder, build_dataset(builder)


def judge_requests(server):
    return [r for r in server.requests if r["route"] == CHAT and "classes does the" in r["body"]["messages"][-1]["content"]]


def assert_exact_and_correct(ds):
    names = ds.features["label"].names
    labels = [names[i] for i in ds["label"]]
    assert Counter(labels) == dict.fromkeys(LABELS, N)
    assert [topic_of(text) for text in ds["text"]] == labels  # none mislabeled
    assert ds["label_check"] == [[label] for label in labels]


# -- parsing ----------------------------------------------------------------------------------------
def test_answers_are_read_from_json_or_from_the_class_they_name():
    assert parse_labels('{"label": "sports"}', NEWS, multi_label=False) == ("sports",)
    assert parse_labels('Sure! {"label": "Science and Technology"}', NEWS, multi_label=False) == ("sci_tech",)
    assert parse_labels("It is about **sci tech**.", NEWS, multi_label=False) == ("sci_tech",)
    assert parse_labels("SPORTS", NEWS, multi_label=False) == ("sports",)
    assert parse_labels(plain_label_reply("business"), NEWS, multi_label=False) == ("business",)
    assert parse_labels("world or business, hard to say", NEWS, multi_label=False) is None  # two classes: no answer
    assert parse_labels("none of them", NEWS, multi_label=False) is None
    assert parse_labels('{"label": "cooking"}', NEWS, multi_label=False) is None
    assert parse_labels('{"labels": ["business", "world"]}', NEWS, multi_label=True) == ("world", "business")
    assert parse_labels("Both world and business apply.", NEWS, multi_label=True) == ("world", "business")


def test_yes_and_no_are_read_from_json_or_the_first_word():
    assert parse_yes_no('{"answer": "yes"}') is True
    assert parse_yes_no('{"answer": "no"}') is False
    assert parse_yes_no("No, it is about something else.") is False
    assert parse_yes_no("**Yes**.") is True
    assert parse_yes_no("The answer is yes.") is True
    assert parse_yes_no("Maybe.") is None
    assert parse_yes_no("Yes and no.") is True  # a first word decides
    assert parse_yes_no("It could be yes or no") is None


def test_the_question_offers_exactly_the_recipe_classes_single_or_multi_label():
    agnews, arxiv = load_preset("agnews"), load_preset("arxiv")
    messages, schema, params = label_question(agnews, "Rain delays the final.")
    assert schema["properties"]["label"]["enum"] == agnews.label_names and schema["required"] == ["label"]
    assert "Which one of these classes" in messages[-1]["content"] and "Rain delays the final." in messages[-1]["content"]
    assert params.temperature == 0.0
    messages, schema, params = label_question(arxiv, "A proof.")
    labels = schema["properties"]["labels"]
    assert labels["type"] == "array" and labels["items"]["enum"] == arxiv.label_names and labels["minItems"] == 1
    assert "One or more" in messages[-1]["content"] and params.max_new_tokens > 48


# -- builds ---------------------------------------------------------------------------------------
def test_mislabeled_replies_are_dropped_and_redrawn_and_a_rerun_sends_nothing(judge_llm, recipe, tmp_path):
    builder, ds = build(recipe, judge_llm, tmp_path, label_check="judge", adherence_sample=8)
    assert_exact_and_correct(ds)
    stats = builder.stats
    written = judge_llm.kinds["off_class"] + judge_llm.kinds["on_class"]
    assert 0.15 <= judge_llm.kinds["off_class"] / written <= 0.3
    assert stats.dropped["label_mismatch"] >= 6
    assert all(s.kept == N and s.attempts == s.kept + sum(s.dropped.values()) for s in stats.per_class.values())
    judged = judge_requests(judge_llm)
    asked = sum(answers.total() for answers in stats.adherence.values())
    assert len(judged) >= 4 * N + stats.dropped["label_mismatch"] and stats.judge_sent == len(judged) + asked
    # huggingface_hub sends OpenAI's json_schema form to an endpoint URL as TGI's grammar form
    assert all(r["body"]["response_format"]["type"] == "json_object" for r in judged)
    enum = judged[0]["body"]["response_format"]["value"]["properties"]["label"]["enum"]
    assert enum == list(LABELS)
    assert stats.judge_response_format == "json_schema" and stats.judge_tokens > 0
    # the bounded adherence sample: the first 2 rows of each class, asked about subtopic and tone, never length,
    # nor about a catch-all subtopic ("Others subtopic for billing.")
    sampled = [row for label in range(4) for row in ds.filter(lambda row, label=label: row["label"] == label).to_list()[:2]]
    specific = sum(not row["subtopic"].startswith("Others ") for row in sampled)
    assert set(stats.adherence) == {"subtopic", "tone"} and 0 < specific < 8
    assert stats.adherence["subtopic"] == {"yes": specific} and stats.adherence["tone"] == {"yes": 8}

    sent = judge_llm.count(CHAT)
    rerun, again = build(recipe, judge_llm, tmp_path, tag="rerun", label_check="judge", adherence_sample=8)
    assert judge_llm.count(CHAT) == sent  # every generation reply and every judge answer came from the journal
    assert again.to_list() == ds.to_list()
    assert rerun.stats.judge_reused == stats.judge_sent and rerun.stats.judge_sent == 0

    # the estimate, told the share of mislabeled replies this server wrote, predicts the judge's requests
    share = stats.dropped["label_mismatch"] / (4 * N + stats.dropped["label_mismatch"])
    judge = JudgeSpec.resolve(label_check="judge", adherence_sample=8)
    predicted = estimate(
        load_recipe(recipe), samples_per_class=N, seed=SEED, judge=judge, mismatch_rate=share, refusal_rate=0, duplicate_rate=0
    )
    assert predicted.judge_requests == 4 * N + stats.dropped["label_mismatch"] + 2 * 8  # catch-alls counted as asked
    assert abs(predicted.judge_requests - stats.judge_sent) <= 8


def test_a_server_without_grammar_support_is_asked_plainly_after_one_refusal(no_grammar_llm, recipe, tmp_path):
    builder, ds = build(recipe, no_grammar_llm, tmp_path, label_check="judge", adherence_sample=0)
    assert_exact_and_correct(ds)
    stats = builder.stats
    assert stats.dropped["label_mismatch"] >= 1 and stats.judge_response_format == "plain"
    judged = judge_requests(no_grammar_llm)
    refused = [r for r in judged if r["status"] == 422]
    assert len(refused) == 1 and judged[0] is refused[0]  # once for the endpoint, not once per row
    assert all("response_format" not in r["body"] for r in judged[1:])
    assert stats.judge_sent == len(judged) - len(refused)
    assert not stats.failures and not stats.retries

    sent = no_grammar_llm.count(CHAT)
    _, again = build(recipe, no_grammar_llm, tmp_path, tag="rerun", label_check="judge", adherence_sample=0)
    assert no_grammar_llm.count(CHAT) == sent  # no probe either: the journal has every answer
    assert again.to_list() == ds.to_list()


def test_flagging_keeps_the_rows_and_names_the_judged_class(judge_llm, recipe, tmp_path):
    # no near-duplicate check: candidates go from screening straight to the judge; default adherence_sample 200
    builder, ds = build(recipe, judge_llm, tmp_path, label_check="judge", on_mismatch="flag", dedup_threshold="off")
    names = ds.features["label"].names
    labels = [names[i] for i in ds["label"]]
    assert Counter(labels) == dict.fromkeys(LABELS, N)
    assert ds["label_check"] == [[topic_of(text)] for text in ds["text"]]
    flagged = sum(check != [label] for check, label in zip(ds["label_check"], labels))
    assert flagged >= 1 and builder.stats.label_flags == flagged
    assert "label_mismatch" not in builder.stats.dropped
    # every kept row was asked (200 > 32 rows) but those drawing the catch-all subtopic; a row about another class
    # was written about another subtopic
    specific = [not subtopic.startswith("Others ") for subtopic in ds["subtopic"]]
    off_class = sum(ok and check != [label] for ok, check, label in zip(specific, ds["label_check"], labels))
    assert builder.stats.adherence["subtopic"] == {"yes": sum(specific) - off_class, "no": off_class} and off_class
    assert builder.stats.adherence["tone"] == {"yes": 4 * N}


def test_kept_rows_do_not_depend_on_timing_or_num_proc(judge_llm, recipe, tmp_path):
    one = build(recipe, judge_llm, tmp_path, tag="one", label_check="judge", dedup_threshold="off", max_concurrency=1)[1]
    assert_exact_and_correct(one)
    builder = make_builder(
        recipe, endpoint=judge_llm.url, samples_per_class=N, seed=SEED, label_check="judge", dedup_threshold="off", max_concurrency=16,
        cache_dir=str(tmp_path / "two"), journal_dir=str(tmp_path / "other-journal"),
    )  # fmt: skip
    two = build_dataset(builder, num_proc=2)  # answers arrive in another order, in two processes, from a fresh journal
    assert two.to_list() == one.to_list()


def test_judge_requests_count_toward_the_request_cap(judge_llm, recipe, tmp_path):
    builder = make_builder(
        recipe, endpoint=judge_llm.url, samples_per_class=N, dedup_threshold="off", label_check="judge",
        adherence_sample=0, max_requests=20, max_concurrency=4, journal_dir=str(tmp_path / "journal"),
    )  # fmt: skip
    with pytest.raises(BudgetExceededError, match="max_requests 20"):
        build_dataset(builder)
    assert judge_llm.count(CHAT) <= 20
    assert len(judge_requests(judge_llm)) > 0


def test_a_judge_on_another_endpoint_answers_and_is_part_of_the_cache_key(judge_llm, recipe, tmp_path):
    with ScriptedJudgeLLM() as judge:
        url = judge.url.replace("http://", "http://judge-user:s3cret-pw@")  # sent as basic auth, shown nowhere
        judge.fail_next(2, 429)  # the judge's endpoint has its own retries, counted apart
        builder, ds = build(recipe, judge_llm, tmp_path, label_check="judge", judge_endpoint=url, adherence_sample=0)
        assert_exact_and_correct(ds)
        assert builder.stats.retries == {"judge_http_429": 2}
        answered = [r for r in judge_requests(judge) if r["status"] == 200]
        assert judge_requests(judge_llm) == [] and len(answered) == builder.stats.judge_sent
        assert judge.requests[-1]["headers"]["authorization"].startswith("Basic ")
        shown = json.dumps([builder.generation_info(), builder.stats.to_dict(), builder.config_id])
        assert "s3cret-pw" not in shown and "judge-user" not in shown
        assert builder.generation_info()["judge"]["endpoint_host"] == judge.url
    own = make_builder(recipe, endpoint=judge_llm.url, label_check="judge")
    assert own.config_id != builder.config_id


def test_the_judge_cost_shows_in_the_progress_bar_the_card_and_generation_json(judge_llm, recipe, tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main([
        "generate", recipe, "--endpoint", judge_llm.url, "-n", "3", "--embedder", "ngram", "--label-check", "judge",
        "--adherence-sample", "4", "--price-in", "0.5", "--price-out", "1.0", "-o", str(out),
        "--cache-dir", str(tmp_path / "cache"), "--journal-dir", str(tmp_path / "journal"),
    ])  # fmt: skip
    printed = capsys.readouterr()
    err = printed.err
    assert code == 0, err
    assert "judged=" in err and "judge_tokens=" in err and "mismatch=" in err
    record = json.loads((out / "generation.json").read_text())
    built = record["stats"]
    assert built["judge_sent"] > 0 and built["judge_tokens"] > 0 and built["judge_cost"] > 0
    assert record["generation"]["judge"]["label_check"] is True
    assert f"; judge: {built['judge_sent']} answers received, 0 reused, {built['judge_tokens']} tokens" in printed.out
    card = (out / "README.md").read_text()
    assert f"| judge total tokens | {built['judge_tokens']} |" in card
    assert f"| judge cost (in the currency of the prices) | {built['judge_cost']:.4f} |" in card
    subtopic = built["adherence"]["subtopic"]
    assert f"| subtopic | {subtopic['yes']} | {sum(subtopic.values())} | 0 |" in card and "| tone | 4 | 4 | 0 |" in card
    assert "#### LLM judge" in card


def test_estimate_adds_the_judge(recipe, capsys):
    plain = estimate(load_recipe(recipe), samples_per_class=10, price_in=1.0, price_out=1.0)
    judged = estimate(
        load_recipe(recipe), samples_per_class=10, price_in=1.0, price_out=1.0,
        judge=JudgeSpec.resolve(label_check="judge"), mismatch_rate=0.2,
    )  # fmt: skip
    assert plain.judge_requests == 0 and judged.judge_requests == 50 + 2 * 40  # 40 rows / 0.8, and 2 dimensions x 40 rows
    assert judged.requests > plain.requests and judged.cost > plain.cost + judged.judge_prompt_tokens / 1000
    assert cli.main(["estimate", "agnews", "-n", "10", "--label-check", "judge", "--adherence-sample", "0"]) == 0
    assert "judge requests" in capsys.readouterr().out


# -- options --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"label_check": "maybe"}, "label_check: got 'maybe'; use one of classifier, judge"),
        ({"label_check": "judge", "on_mismatch": "keep"}, "on_mismatch: got 'keep'; use one of drop, flag"),
        ({"on_mismatch": "flag"}, "on_mismatch: got 'flag'; it acts on the LLM judge"),
        ({"adherence_sample": -1}, "adherence_sample: got -1; use a whole number >= 0"),
        ({"adherence_sample": 2.5}, "adherence_sample: got 2.5; use a whole number >= 0"),
        ({"label_check": "judge", "judge_endpoint": "localhost:8080"}, "judge_endpoint: got 'localhost:8080'; use a base URL"),
        (
            {"judge_endpoint": "http://a:1", "judge_provider": "auto"},
            "judge_provider + judge_endpoint: got judge_provider='auto'",
        ),
        ({"label_check": "classifier", "on_mismatch": "flag"}, "on_mismatch: got 'flag'; it acts on the LLM judge"),
    ],
)
def test_bad_judge_options_are_one_line(recipe, options, message):
    with pytest.raises(ConfigError) as caught:
        make_builder(recipe, endpoint="http://localhost:8080", **options)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)
