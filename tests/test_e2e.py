"""End to end: the app as a subprocess, the real local model, driven with gradio_client."""

import re

import pytest
from gradio_client import Client

from tests.apprunner import PASSWORD, AppProcess, add_user

pytestmark = pytest.mark.e2e

JUST_CHAT = ["Just chat", "Sure, let's just chat. Ask me anything; what you told me so far "
             "is kept on the card."]


@pytest.fixture(scope="module")
def scripted_app(tmp_path_factory: pytest.TempPathFactory):
    """One app (scripted model, no segments) shared by the tests that only use their own
    client sessions: each gradio_client has its own session, so they cannot see each other.
    Staff users alex (agent) and olivia (ops) exist."""
    data = tmp_path_factory.mktemp("shared-app") / "data"
    add_user(data, "alex", "agent")
    add_user(data, "olivia", "ops")
    with AppProcess(data, provider="scripted") as app:
        yield app


def just_chat(client: Client) -> None:
    """/chat runs the guided questionnaire first, as the chat box does; leave it."""
    assert client.predict("Just chat", api_name="/chat") == JUST_CHAT[1]


def test_chat_with_local_model_survives_restart(tmp_path):
    data = tmp_path / "data"
    with AppProcess(data) as app:
        client = Client(app.url, verbose=False)
        just_chat(client)
        reply = client.predict("Hello! Can you suggest a gift for my mother?", api_name="/chat")
        assert isinstance(reply, str) and len(reply.strip()) > 10
        sid = client.predict(api_name="/session")
        second = client.predict("Thank you!", api_name="/chat")
        assert second.strip()
        # another client has its own session
        other = Client(app.url, verbose=False)
        assert other.predict(api_name="/session") != sid
        assert "provider=local" in app.log() and "SmolLM2-135M-Instruct" in app.log()
    # SIGTERM stops it although clients still hold streams open (no SIGKILL needed)
    assert not app.killed, app.log()[-2000:]

    with AppProcess(data, port=app.port) as again:
        client = Client(again.url, verbose=False)
        history = client.predict(sid, api_name="/resume")
        assert [m["content"] for m in history[:2]] == JUST_CHAT
        history = history[2:]
        assert [m["role"] for m in history] == ["user", "assistant", "user", "assistant"]
        assert history[0]["content"] == "Hello! Can you suggest a gift for my mother?"
        assert history[1]["content"] == reply.strip()
        # the conversation goes on in the resumed session
        client.predict("One more question.", api_name="/chat")
        assert len(client.predict(sid, api_name="/resume")) == 8


def test_bad_input_gets_clear_error_and_app_keeps_running(scripted_app):
    client = Client(scripted_app.url, verbose=False)
    with pytest.raises(Exception, match="empty"):
        client.predict("   ", api_name="/chat")
    with pytest.raises(Exception, match="20,000 characters"):
        client.predict("y" * 20_000, api_name="/chat")
    just_chat(client)
    assert "You said: still here" in client.predict("still here", api_name="/chat")


def test_broken_template_stops_startup_with_file_and_line(tmp_path):
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    (prompts / "chat.yaml").write_text("name: chat\ndescription: [unclosed\nmessages: []\n")
    app = AppProcess(tmp_path / "data", provider="scripted",
                     env={"TAILOR_PROMPTS_DIR": str(prompts)})
    with pytest.raises(RuntimeError, match="exited with 2") as exc:
        app.start(timeout=60)
    assert f"{prompts / 'chat.yaml'}:" in str(exc.value)
    assert "Traceback" not in str(exc.value)


def test_invalid_settings_stop_startup_with_hint(tmp_path):
    app = AppProcess(tmp_path / "data", provider="scripted", env={"TAILOR_PORT": "abc"})
    with pytest.raises(RuntimeError, match="exited with 2") as exc:
        app.start(timeout=60)
    assert "TAILOR_PORT='abc'" in str(exc.value) and "hint:" in str(exc.value)
    assert "Traceback" not in str(exc.value)


def test_openai_compatible_server_through_the_app(tmp_path):
    """OPENAI_BASE_URL set: auto picks the OpenAI path; a server failing after the retries
    leaves the standard reply (saved as such), the app keeps running, the conversation is
    intact, and it recovers."""
    from assistant.service.chat import CHAT_FALLBACK
    from tests.fake_openai import FakeOpenAIServer, reply

    with FakeOpenAIServer() as fake:
        env = {"OPENAI_BASE_URL": fake.base_url, "TAILOR_LLM_MODEL": "fake-model",
               "TAILOR_LLM_MAX_RETRIES": "1", "TAILOR_LLM_PROVIDER": "auto"}
        with AppProcess(tmp_path / "data", provider="auto", env=env) as app:
            assert "provider=openai model=fake-model" in app.log()
            # the public page never shows the model server's address (issue 15)
            import urllib.request

            with urllib.request.urlopen(app.url + "config") as resp:
                page = resp.read().decode()
            assert "fake-model (an OpenAI-compatible server)" in page
            assert fake.base_url not in page and "127.0.0.1:" not in page.replace(
                app.url.rstrip("/"), "")
            client = Client(app.url, verbose=False)
            just_chat(client)
            fake.script([reply("Happy to help with gifts.")])
            assert client.predict("hi", api_name="/chat") == "Happy to help with gifts."
            sid = client.predict(api_name="/session")
            fake.script(["500", "500"])  # first try + one retry
            assert client.predict("are you there?", api_name="/chat") == CHAT_FALLBACK
            assert len(fake.chat_requests) == 3
            history = client.predict(sid, api_name="/resume")
            assert [m["content"] for m in history] == [
                *JUST_CHAT, "hi", "Happy to help with gifts.", "are you there?", CHAT_FALLBACK]
            assert history[-1]["status"] == "fallback"
            fake.script([reply("Back again.")])
            assert client.predict("hello?", api_name="/chat") == "Back again."
            # personal data in a message never reaches the external server (issue 15)
            fake.script([reply("Noted, [NAME_1].")])
            assert client.predict("I'm Jo Bloggs, jo@bloggs.example, 07700 900123",
                                  api_name="/chat") == "Noted, Jo Bloggs."
            out = str(fake.bodies[-1])
            assert "jo@bloggs.example" not in out and "07700 900123" not in out
            assert "Bloggs" not in out and "[EMAIL_1]" in out
            sent = fake.bodies[-2]["messages"]
            assert [m["content"] for m in sent[1:]] == [
                *JUST_CHAT, "hi", "Happy to help with gifts.", "are you there?", CHAT_FALLBACK,
                "hello?"]


def test_first_run_builds_segments_and_api_serves_them(tmp_path):
    """No segments yet: the app builds them from the shipped real orders in the background;
    the API then places a known customer and a person from answers."""
    import time

    add_user(tmp_path / "data", "olivia", "ops")
    with AppProcess(tmp_path / "data", provider="scripted",
                    env={"TAILOR_AUTO_BUILD_SEGMENTS": "true"}) as app:
        client = Client(app.url + "staff/", auth=("olivia", PASSWORD), verbose=False)
        deadline = time.monotonic() + 240
        while True:
            seg = client.predict("17850", api_name="/segment_of_customer")
            if "error" not in seg or time.monotonic() > deadline:
                break
            assert "No segments have been built yet" in seg["error"]
            time.sleep(2)
        assert seg["segment"] in {"At Risk", "Lost", "Hibernating", "Can't Lose Them"}, seg
        assert seg["reasons"] and 0 < seg["probability"] <= 1
        said = client.predict('{"order_frequency": "more than once a month", '
                              '"last_order": "within the last month", '
                              '"spend_per_order": "over £600"}', "",
                              api_name="/segment_from_answers")
        assert said["segment"] == "Champions" and said["source"] == "said"
        bad = client.predict("{not json", "", api_name="/segment_from_answers")
        assert "not valid JSON" in bad["error"] and bad["hint"]
        unknown = client.predict("nobody", api_name="/segment_of_customer")
        assert "No customer 'nobody'" in unknown["error"]
        assert "segments built: 4338 customers" in app.log()


def test_questionnaire_api_resumes_after_restart(tmp_path):
    data = tmp_path / "data"
    with AppProcess(data, provider="scripted") as app:
        client = Client(app.url, verbose=False)
        opening = client.predict("", api_name="/questionnaire")["turn"]
        assert opening["question_id"] == "looking_for" and opening["message"]
        # the opening (in their own words) skipped, then a quick reply
        first = client.predict("skip", api_name="/questionnaire")["turn"]
        assert first["question_id"] and first["message"] and first["quick_replies"]
        second = client.predict(first["quick_replies"][0], api_name="/questionnaire")
        assert second["card"]["facts"][0]["source"] == "said"
        sid = client.predict(api_name="/session")
    with AppProcess(data, provider="scripted", port=app.port) as again:
        client = Client(again.url, verbose=False)
        client.predict(sid, api_name="/resume")
        resumed = client.predict("", api_name="/questionnaire")
        assert resumed["turn"]["question_id"] == second["turn"]["question_id"]
        assert resumed["card"]["facts"] == second["card"]["facts"]


def test_questionnaire_through_chat_question_answer_and_profile(scripted_app):
    """The questionnaire API as an HTTP client sees it (gradio_client)."""
    client = Client(scripted_app.url, verbose=False)
    q = client.predict(api_name="/question")
    assert q["id"] == "looking_for" and q["type"] == "text"
    client.predict("skip", api_name="/chat")  # the opening, in their own words: skipped
    q = client.predict(api_name="/question")
    assert q["id"] == "buyer_type" and q["type"] == "single" and q["options"]
    reply = client.predict(q["options"][0]["label"], api_name="/chat")
    assert reply.startswith("Got it")
    nxt = client.predict(api_name="/question")
    # the skipped opening and this answer
    assert nxt["id"] != q["id"] and nxt["progress"]["answered"] == 2
    reply = client.predict("budget", "about 40 quid", api_name="/answer")
    assert "£40" in reply
    # a correction in free text, at any time
    reply = client.predict("actually my budget is 50", api_name="/chat")
    assert "changed your budget to £50" in reply
    bad = client.predict("budget", "a zillion", api_name="/answer")
    assert "Sorry" in bad
    card = client.predict(api_name="/profile")
    facts = {f["question"]: f for f in card["facts"]}
    assert facts["buyer_type"]["source"] == "said"
    assert facts["budget"]["value"] == {"min": 50, "max": 50}
    assert all(0 < f["confidence"] <= 1 for f in card["facts"])
    assert card["answered"] >= 2 and card["total"] > card["answered"]
    with pytest.raises(Exception, match="no question 'shoe_size'"):
        client.predict("shoe_size", "42", api_name="/answer")


def test_staff_app_needs_login_and_the_right_role(scripted_app):
    """The chat stays public; /staff needs a login (HTTP and gradio_client), and each
    action checks the role."""
    import urllib.error
    import urllib.request

    app = scripted_app
    assert Client(app.url, verbose=False).predict(api_name="/question")["id"]
    with pytest.raises(urllib.error.HTTPError) as denied:
        urllib.request.urlopen(app.url + "staff/config")
    assert denied.value.code == 401
    with pytest.raises(Exception, match="credentials were not provided"):
        Client(app.url + "staff/", verbose=False)
    with pytest.raises(ValueError, match="Could not login"):
        Client(app.url + "staff/", auth=("alex", "wrong-password"), verbose=False)
    agent = Client(app.url + "staff/", auth=("alex", PASSWORD), verbose=False)
    refused = agent.predict("17850", api_name="/segment_of_customer")
    assert refused["error"] == "Your account 'alex' has the role agent; this needs ops."
    ops = Client(app.url + "staff/", auth=("olivia", PASSWORD), verbose=False)
    assert "No segments have been built yet" in ops.predict(
        "17850", api_name="/segment_of_customer")["error"]


def test_recommend_api_popular_then_personal(scripted_app):
    """/recommend on the shipped orders: labelled popular items for a new person, then
    items for what they said; /item_feedback removes a 'not for me' item."""
    client = Client(scripted_app.url, verbose=False)
    first = client.predict(api_name="/recommend")
    assert first["popular"] and all(i["fallback"] for i in first["items"])
    client.predict("interests", "candles and christmas", api_name="/answer")
    client.predict("budget", "about 5 pounds", api_name="/answer")
    mine = client.predict(api_name="/recommend")["items"]
    assert mine and mine != first["items"]
    assert any("within your budget of £5" in i["reasons"] for i in mine)
    gone = mine[0]["id"]
    after = client.predict(gone, "not_for_me", api_name="/item_feedback")["items"]
    assert gone not in [i["id"] for i in after]
    with pytest.raises(Exception, match="not a reaction"):
        client.predict(gone, "love it", api_name="/item_feedback")


def test_agent_desk_api_needs_the_agent_role(tmp_path, staff_shop):
    """/customer and /draft through gradio_client: an agent gets the sidebar and a cited,
    checked draft; ops are refused; anonymous callers never get in."""
    from tests.conftest import copy_shop

    data, orders = copy_shop(staff_shop, tmp_path / "shop")
    add_user(data, "alex", "agent")
    add_user(data, "olivia", "ops")
    with AppProcess(data, provider="scripted", env={"TAILOR_ORDERS": str(orders)}) as app:
        agent = Client(app.url + "staff/", auth=("alex", PASSWORD), verbose=False)
        side = agent.predict("17850", api_name="/customer")
        assert side["segment"] and side["recent_orders"] and side["rfm"]["frequency"] >= 1
        order = side["recent_orders"][0]["order_id"]
        ticket = (f"Hi, my order {order} has not arrived and it's been two weeks. Also you "
                  "charged me £999.99! <script>alert(1)</script>")
        draft = agent.predict("17850", ticket, "friendlier", api_name="/draft")
        assert draft["text"] and draft["template_version"] and draft["id"]
        assert draft["intent"] and draft["citations"]
        # the scripted model echoes the ticket: its rewrite drops the composed draft's facts,
        # so the composed draft is shown: the order named, a passage cited, nothing invented
        assert draft["shown"] == "composed" and draft["shown_reason"]
        assert re.search(rf"I can see your (?:latest order, |order ){order}\b", draft["text"])
        assert any(c["used"] and f"[{c['n']}]" in draft["text"] for c in draft["citations"])
        assert draft["text"].startswith("Hi there,")  # friendlier
        assert "£999.99" not in draft["text"] and "<script>" not in draft["text"]
        assert draft["flags"] == []  # nothing unsupported in the shown draft
        # the ticket's <script> is reported as an attempt to steer: never marked clean
        assert draft["injection"] and draft["status"] == "flagged"
        with pytest.raises(Exception, match="No customer 'nobody'"):
            agent.predict("nobody", api_name="/customer")
        with pytest.raises(Exception, match="empty"):
            agent.predict("17850", "   ", "neutral", api_name="/draft")
        ops = Client(app.url + "staff/", auth=("olivia", PASSWORD), verbose=False)
        with pytest.raises(Exception, match="has the role ops; this needs agent"):
            ops.predict("17850", api_name="/customer")
        with pytest.raises(Exception, match="credentials were not provided"):
            Client(app.url + "staff/", verbose=False)


def test_running_app_picks_up_a_new_production_template(tmp_path):
    """Ops save and promote a new chat template in SQLite; the running app uses it within
    seconds, without a restart (seen in the call log and in what the model receives)."""
    import time

    from assistant.core.config import load_settings
    from assistant.infra.store import Store
    from assistant.prompts.versions import PromptVersions

    data = tmp_path / "data"
    with AppProcess(data, provider="scripted") as app:
        client = Client(app.url, verbose=False)
        just_chat(client)
        client.predict("hello", api_name="/chat")
        store = Store(data / "tailor.sqlite3")
        assert store.llm_calls(1)[0].template_version == "v1"
        versions = PromptVersions.from_settings(load_settings(data_dir=data))
        v1 = versions.get("chat", label="production")
        body = v1.body.replace("Answer in two or three short, friendly sentences.",
                               "Answer in one short, friendly sentence.")
        assert body != v1.body
        v2 = versions.save("chat", body, author="olivia", note="shorter replies",
                           base_version=v1.version)
        versions.set_label("chat", "production", v2.version, actor="olivia",
                           reason="e2e: no model tests here", override=True)
        deadline = time.monotonic() + 20
        while True:
            client.predict("again", api_name="/chat")
            if store.llm_calls(1)[0].template_version == "v2" or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert store.llm_calls(1)[0].template_version == "v2"
        versions.rollback("chat", actor="olivia", reason="back to v1")
        deadline = time.monotonic() + 20
        while store.llm_calls(1)[0].template_version != "v1" and time.monotonic() < deadline:
            client.predict("and again", api_name="/chat")
            time.sleep(1)
        assert store.llm_calls(1)[0].template_version == "v1"
