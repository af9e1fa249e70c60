"""`optforge llm check` end to end: the real command line against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
import socket

import pytest

from optforge.agent.cli.main import main

from .chat_server import api_error, completion, raw, stall
from .conftest import FAKE_KEY, TIMEOUT_S, model_for
from .samples import BROKEN_SOURCE, GOOD_SOURCE, LOSS_SOURCE, json_reply

PROSE = "Sure! An optimizer updates parameters using gradients, for example SGD or Adam."


def check(capsys, *args: str) -> tuple[int, str, str]:
    """Run `optforge llm check ARGS`: (exit status, stdout, stderr); the key must be in neither."""
    status = main(["llm", "check", *args])
    out, err = capsys.readouterr()
    assert FAKE_KEY not in out and FAKE_KEY not in err
    assert FAKE_KEY[:12] not in out + err  # not even a prefix
    return status, out, err


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("optforge: error: ")
    return lines[0]


def test_a_good_reply_passes_and_reports_the_request(chat_server, fake_key, backend, capsys):
    chat_server.enqueue(completion(json_reply(GOOD_SOURCE), tokens_in=321, tokens_out=45))
    model = model_for(backend)
    status, out, err = check(
        capsys, "--base-url", chat_server.base_url, "--model", model, "--backend", backend
    )

    assert status == 0, out + err
    assert err == ""
    assert f"endpoint: {chat_server.base_url}\n" in out
    assert f"backend: {backend}\n" in out
    assert f"model: {model}\n" in out
    assert "api key: set, from OPTFORGE_LLM_API_KEY\n" in out
    assert "tokens: 321 in, 45 out\n" in out
    assert "latency: " in out and " s\n" in out
    assert f"reply: parsed (code, {len(GOOD_SOURCE.splitlines())} lines)\n" in out
    assert "contract: passes\n" in out
    (sent,) = chat_server.requests  # one request, no retries
    assert sent["model"] == "fake-model"
    assert sent["max_tokens"] == 512  # min(the default 4096, 512)
    assert sent["temperature"] == 0.8
    (message,) = sent["messages"]
    assert message["role"] == "user"
    assert len(message["content"]) < 4000
    assert "optimizer candidate" in message["content"] and '"code"' in message["content"]
    assert chat_server.authorizations == [f"Bearer {FAKE_KEY}"]  # on the wire, and only there


def test_settings_resolve_as_run_resolves_them(chat_server, fake_key, tmp_path, monkeypatch, capsys):
    """The config file's [llm] table, then the environment; kind and max_tokens from the file."""
    config = tmp_path / "campaign.toml"
    config.write_text('kind = "loss"\n[llm]\nmax_tokens = 512\ntemperature = 0.2\n', encoding="utf-8")
    monkeypatch.setenv("OPTFORGE_LLM_BASE_URL", chat_server.base_url)
    monkeypatch.setenv("OPTFORGE_LLM_MODEL", "env-model")
    chat_server.enqueue(completion(f"Here it is:\n```python\n{LOSS_SOURCE}```\n"))
    status, out, err = check(capsys, "--config", str(config))

    assert status == 0, out + err
    assert "model: env-model\n" in out
    (sent,) = chat_server.requests
    assert (sent["model"], sent["max_tokens"], sent["temperature"]) == ("env-model", 512, 0.2)
    assert "loss candidate" in sent["messages"][0]["content"]


def test_flags_win_over_the_environment(chat_server, fake_key, monkeypatch, capsys):
    monkeypatch.setenv("OPTFORGE_LLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPTFORGE_LLM_MODEL", "env-model")
    chat_server.enqueue(completion(json_reply(GOOD_SOURCE)))
    status, out, err = check(
        capsys, "--base-url", chat_server.base_url, "--model", "flag-model", "--kind", "optimizer"
    )
    assert status == 0, out + err
    assert chat_server.requests[0]["model"] == "flag-model"


@pytest.mark.parametrize("kind", ["loss", "schedule", "preference_loss", "scaling_rule"])
def test_every_kind_gets_a_short_prompt_of_its_own(chat_server, fake_key, kind, capsys):
    chat_server.enqueue(completion(PROSE))
    status, out, _ = check(capsys, "--base-url", chat_server.base_url, "--kind", kind)
    assert status == 1
    prompt = chat_server.requests[0]["messages"][0]["content"]
    assert f"valid {kind} candidate" in prompt and len(prompt) < 4000


def test_a_prose_reply_means_the_setup_works_but_the_model_does_not(chat_server, fake_key, capsys):
    chat_server.enqueue(completion(PROSE))
    status, out, err = check(capsys, "--base-url", chat_server.base_url)

    assert status == 1
    assert err == ""
    assert 'reply: not usable: found neither a JSON object with "code" nor a ```python block' in out
    assert "contract: not checked" in out
    assert "the set-up works" in out.splitlines()[-1]


def test_code_that_breaks_the_contract_is_not_usable(chat_server, fake_key, capsys):
    chat_server.enqueue(completion(json_reply(BROKEN_SOURCE)))
    status, out, err = check(capsys, "--base-url", chat_server.base_url)

    assert status == 1
    assert err == ""
    assert "reply: parsed (code, " in out
    assert "contract: line 1: import of 'os' is not allowed" in out
    assert len(chat_server.requests) == 1  # a check makes no repair round


def test_json_output_parses(chat_server, fake_key, capsys):
    chat_server.enqueue(completion(json_reply(BROKEN_SOURCE), tokens_in=7, tokens_out=9))
    status, out, _ = check(capsys, "--base-url", chat_server.base_url, "--json")

    report = json.loads(out)
    assert status == 1 and report["status"] == "unusable"
    assert report["endpoint"] == chat_server.base_url
    assert report["model"] == "gpt-4o-mini"  # the default model
    assert report["api_key_variable"] == "OPTFORGE_LLM_API_KEY"
    assert (report["tokens_in"], report["tokens_out"], report["max_tokens"]) == (7, 9, 512)
    assert report["reply"]["parsed"] and report["reply"]["code_lines"] > 0
    assert any("import of 'os'" in e for e in report["contract_errors"])
    assert report["error"] is None


def test_a_refused_key_is_one_line_naming_its_variable(chat_server, fake_key, capsys):
    chat_server.enqueue(api_error(401, f"Incorrect API key provided: {FAKE_KEY}"))
    status, out, err = check(capsys, "--base-url", chat_server.base_url)

    assert status == 2
    line = one_error_line(err)
    assert "refused the API key from OPTFORGE_LLM_API_KEY" in line and "HTTP 401" in line
    assert "latency: " in out and "(failed)" in out
    assert len(chat_server.requests) == 1


def test_a_wrong_model_names_the_models_the_server_serves(chat_server, fake_key, backend, capsys):
    chat_server.models = ["qwen2.5-coder-7b", "llama3.1-8b"]
    chat_server.enqueue(api_error(404, "The model `fake-model` does not exist."))
    status, _, err = check(
        capsys, "--base-url", chat_server.base_url, "--model", model_for(backend), "--backend", backend
    )

    assert status == 2
    line = one_error_line(err)
    assert "the server serves: qwen2.5-coder-7b, llama3.1-8b" in line
    assert "--model" in line and "OPTFORGE_LLM_MODEL" in line
    assert chat_server.gets == ["/v1/models"]


def test_a_fastapi_400_for_another_model_names_the_served_one(chat_server, fake_key, capsys):
    # What `transformers serve` answers when pinned to one model: FastAPI's {"detail": ...}, a 400.
    chat_server.models = ["SmolLM2-135M-Instruct"]
    pinned = b'{"detail": "Server is pinned to \'SmolLM2-135M-Instruct\'; requested \'fake-model\'."}'
    chat_server.enqueue(raw(pinned, status=400))
    status, _, err = check(capsys, "--base-url", chat_server.base_url, "--model", "fake-model")

    assert status == 2
    line = one_error_line(err)
    assert "the server serves: SmolLM2-135M-Instruct" in line and "OPTFORGE_LLM_MODEL" in line


def test_a_404_without_a_model_list_says_what_to_check(chat_server, fake_key, capsys):
    chat_server.enqueue(api_error(404, "The model `fake-model` does not exist."))
    status, _, err = check(capsys, "--base-url", chat_server.base_url, "--json")
    line = one_error_line(err)
    assert status == 2
    assert "check the model name" in line and chat_server.base_url in line


def test_nothing_listening_is_one_line(fake_key, capsys):
    with socket.socket() as sock:  # a port that was free a moment ago, and now nobody's
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    status, out, err = check(capsys, "--base-url", url, "--timeout", "5")

    assert status == 2
    line = one_error_line(err)
    assert f"cannot connect to {url}" in line and "check the server is running" in line
    assert f"endpoint: {url}" in out


def test_a_stalled_server_times_out(chat_server, fake_key, capsys):
    chat_server.enqueue(stall(10))
    status, out, err = check(
        capsys, "--base-url", chat_server.base_url, "--timeout", str(TIMEOUT_S), "--json"
    )

    assert status == 2
    line = one_error_line(err)
    assert f"within {TIMEOUT_S:g}s" in line and "raise --timeout" in line
    report = json.loads(out)
    assert report["status"] == "failed" and report["error"] in line
    assert len(chat_server.requests) == 1  # no retry


def test_no_key_and_no_base_url_is_the_usual_message(fake_key, monkeypatch, capsys):
    monkeypatch.delenv("OPTFORGE_LLM_API_KEY")
    status, out, err = check(capsys)
    assert status == 2 and out == ""
    assert "no API key for OpenAI: set OPTFORGE_LLM_API_KEY or OPENAI_API_KEY" in one_error_line(err)


def test_a_bad_timeout_is_refused(fake_key, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["llm", "check", "--timeout", "0"])
    assert exited.value.code == 2
    assert "must be more than 0 seconds" in capsys.readouterr().err
