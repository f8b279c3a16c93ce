"""A real browser (Debian chromium via Playwright) against the real app and local model."""

import os
import shutil
import time
from pathlib import Path

import pytest

from assistant.segments.model import SEGMENTS
from tests.apprunner import PASSWORD, AppProcess, add_user

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def browser():
    if not shutil.which(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing under CI: ./tailor.sh test installs it with apt")
        pytest.skip("chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


DOCS = Path(__file__).resolve().parents[1] / "docs"


def shot(page, path: Path, docs_name: str | None = None, *, full_page: bool = True) -> None:
    """A screenshot kept with the test's files; with DOCS_SCREENSHOTS=1 it also becomes
    the README's picture ``docs/<docs_name>.png`` (refresh them when the UI changes:
    ``DOCS_SCREENSHOTS=1 ./tailor.sh test -m browser``)."""
    page.screenshot(path=str(path), full_page=full_page)
    if docs_name and os.environ.get("DOCS_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(path, DOCS / f"{docs_name}.png")


def just_chat(page) -> None:
    """The chat opens with the guided questionnaire; its "Just chat" reply leaves it."""
    page.get_by_role("button", name="Just chat").first.click(timeout=20_000)
    page.get_by_text("Sure, let's just chat.").wait_for(timeout=20_000)


def login(page, url: str, name: str, password: str = PASSWORD) -> None:
    """Gradio's login form of the staff app."""
    page.goto(url + "staff/")
    page.get_by_label("username").fill(name)
    page.get_by_label("password").fill(password)
    page.get_by_role("button", name="Login").click()
    page.get_by_text(f"Signed in as {name}").wait_for(timeout=30_000)


def link_customer(page, customer_id: str, proof: str) -> None:
    """The chat's "Ordered from us before?" box: link a returning customer's orders with
    the number of one of their orders as proof."""
    page.get_by_text("Ordered from us before?").click()
    page.locator("#tailor-customer-id textarea, #tailor-customer-id input").first.fill(
        customer_id)
    page.locator("#tailor-proof input, #tailor-proof textarea").first.fill(proof)
    page.get_by_role("button", name="Use my order history").click()
    page.get_by_text("Welcome back!").wait_for(timeout=20_000)


def bot_texts(page) -> list[str]:
    """Assistant bubbles' text (Gradio's pending placeholder left out)."""
    texts = page.locator("#tailor-chat .message.bot").all_inner_texts()
    return [t for t in texts if t.strip() != "Loading content"]


def test_type_message_see_streamed_reply_and_resume_after_reload(browser, tmp_path):
    with AppProcess(tmp_path / "data") as app:
        page = browser.new_page()
        page.goto(app.url)
        just_chat(page)
        box = page.locator("#tailor-input textarea")
        before = len(bot_texts(page))
        box.fill("Hi! What is a good gift for a friend who loves tea?")
        box.press("Enter")
        # watch the reply grow: several distinct partial texts mean it streamed
        seen: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            texts = bot_texts(page)[before:]  # only the new reply
            if texts and texts[-1].strip() and (not seen or seen[-1] != texts[-1]):
                seen.append(texts[-1])
            if len(seen) > 1 and page.locator(".generating").count() == 0 and \
                    seen[-1] == bot_texts(page)[-1]:
                time.sleep(0.5)
                if bot_texts(page)[-1] == seen[-1]:
                    break
            time.sleep(0.05)
        assert len(seen) >= 2, f"reply did not stream (saw {seen!r})"
        final = seen[-1]
        assert len(final.strip()) > 10
        # every partial text was a beginning of the final reply
        assert all(final.startswith(part.strip()[:20]) for part in seen), seen
        # reload: the conversation comes back from SQLite
        page.reload()
        page.locator("#tailor-chat .message.bot").first.wait_for(timeout=20_000)
        assert bot_texts(page)[-1].strip() == final.strip()
        page.screenshot(path=str(tmp_path / "chat.png"))
        page.close()


def _db_rows(data_dir, sql):
    import sqlite3

    with sqlite3.connect(data_dir / "tailor.sqlite3") as conn:
        return conn.execute(sql).fetchall()


def test_like_retry_and_clear_are_recorded(browser, tmp_path):
    data = tmp_path / "data"
    with AppProcess(data, provider="scripted") as app:
        page = browser.new_page()
        page.goto(app.url)
        just_chat(page)
        box = page.locator("#tailor-input textarea")
        box.fill("hello there")
        box.press("Enter")
        page.get_by_text("(scripted) You said: hello there").wait_for(timeout=20_000)
        page.locator("#tailor-chat button[aria-label='Like']").last.click()
        _wait_for(lambda: _db_rows(data, "SELECT value FROM feedback") == [(1,)])
        page.locator("#tailor-chat button[aria-label='Retry']").last.click()
        _wait_for(lambda: _db_rows(
            data, "SELECT COUNT(*) FROM messages WHERE role='assistant' AND superseded=1"
        ) == [(1,)])
        page.get_by_text("(scripted) You said: hello there").wait_for(timeout=20_000)
        # an empty message is refused with a notice and nothing is sent
        box.fill("   ")
        box.press("Enter")
        page.get_by_text("Your message is empty").first.wait_for(timeout=10_000)
        # users said "Just chat" and "hello there"; the blank message was not sent
        assert _db_rows(data, "SELECT COUNT(*) FROM messages WHERE role='user'") == [(2,)]
        assert bot_texts(page)[-1] == "(scripted) You said: hello there"  # chat left as it was
        # the bin erases the conversation (issue 15) and starts a new, empty one
        # (the warning toast sits on top of the Clear button: dispatch the click to it)
        page.locator("#tailor-chat button[aria-label='Clear']").dispatch_event("click")
        _wait_for(lambda: page.get_by_text("hello there").count() == 0)
        page.get_by_role("button", name="Just chat").first.wait_for(timeout=20_000)
        _wait_for(lambda: _db_rows(
            data, "SELECT COUNT(*) FROM messages WHERE content LIKE '%hello there%'") == [(0,)])
        assert _db_rows(data, "SELECT COUNT(*) FROM sessions") == [(1,)]
        page.close()


def test_stop_keeps_the_partial_reply(browser, tmp_path):
    data = tmp_path / "data"
    with AppProcess(data) as app:
        page = browser.new_page()
        page.goto(app.url)
        just_chat(page)
        box = page.locator("#tailor-input textarea")
        before = len(bot_texts(page))
        box.fill("Write a long story about a shop that sells candles, lanterns and cake tins.")
        box.press("Enter")
        _wait_for(lambda: any(len(t) > 20 for t in bot_texts(page)[before:]), timeout=60)
        page.get_by_role("button", name="Stop").click()
        _wait_for(lambda: _db_rows(
            data, "SELECT status FROM messages WHERE llm_call_id IS NOT NULL") == [("stopped",)])
        [(content,)] = _db_rows(data, "SELECT content FROM messages WHERE status='stopped'")
        assert len(content) > 10
        assert _db_rows(data, "SELECT outcome FROM llm_calls") == [("stopped",)]
        page.close()


def _wait_for(check, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_segments_tab_empty_state_then_rebuild_with_plots(browser, tmp_path):
    """Ops upload real orders (the first 60,000 rows of the shipped file) and rebuild."""
    import pandas as pd

    from assistant.core.config import REPO_ROOT

    orders = tmp_path / "orders.csv"
    pd.read_csv(REPO_ROOT / "data" / "online_retail.csv.gz", nrows=60_000).to_csv(
        orders, index=False)
    add_user(tmp_path / "data", "olivia", "ops")
    add_user(tmp_path / "data", "alex", "agent")
    with AppProcess(tmp_path / "data", provider="scripted") as app:
        # an agent signs in: the Segments tab refuses clearly
        page = browser.new_page(viewport={"width": 1280, "height": 1800})
        login(page, app.url, "alex")
        page.get_by_role("tab", name="Segments").click()
        page.get_by_text("Segments need the ops role").wait_for(timeout=20_000)
        page.get_by_role("tab", name="Insights").click()
        page.get_by_text("Insights need the ops role").wait_for(timeout=20_000)
        page.get_by_role("tab", name="Prompt studio").click()
        page.get_by_text("the Prompt studio needs the ops role").wait_for(timeout=20_000)
        assert not page.locator("#tailor-studio-editor").is_visible()
        page.close()
        # ops sign in and rebuild
        page = browser.new_page(viewport={"width": 1280, "height": 1800})
        login(page, app.url, "olivia")
        page.get_by_role("tab", name="Segments").click()
        page.get_by_text("No segments yet.").wait_for(timeout=20_000)
        page.get_by_text("Rebuild from an orders file").click()
        page.locator("#tailor-orders-upload input[type=file]").set_input_files(str(orders))
        page.get_by_role("button", name="Rebuild", exact=True).click()
        page.locator("text=/[0-9,]+ customers/").first.wait_for(timeout=120_000)
        _wait_for(lambda: page.locator(".js-plotly-plot").count() >= 4, timeout=30)
        assert page.get_by_text("Confusion matrix").count() >= 1
        shot(page, tmp_path / "segments.png", "segments")
        # Insights (the shipped orders): cohort heat map, per-segment bars, migration
        page.get_by_role("tab", name="Insights").click()
        header = page.locator("#tailor-insights-header")
        header.get_by_text("customers measured").wait_for(timeout=60_000)
        tab = page.locator("#tailor-insights")
        _wait_for(lambda: tab.locator(".js-plotly-plot").count() >= 3, timeout=30)
        assert tab.locator(".heatmaplayer").count() == 1
        page.get_by_role("button", name="Show migration").click()
        tab.locator(".sankey").first.wait_for(timeout=60_000)
        shot(page, tmp_path / "insights.png", "insights")
        # an experiment between two recommender variants, then simulated traffic
        page.get_by_text("Experiment: recommender variants or support policies").click()
        page.get_by_label("Name").fill("browser-test")
        page.get_by_role("button", name="Start", exact=True).click()
        note = page.locator("#tailor-experiment")
        note.get_by_text("(running").wait_for(timeout=60_000)
        page.get_by_label("Simulated sessions").fill("40")
        page.get_by_role("button", name="Simulate traffic").click()
        note.get_by_text("40 simulated sessions written").wait_for(timeout=180_000)
        assert "40 of these sessions are SIMULATED" in note.inner_text()
        page.get_by_role("button", name="Stop", exact=True).click()
        note.get_by_text("(stopped").wait_for(timeout=60_000)
        # a policy experiment: picking the kind fills in a working example
        page.get_by_label("policy", exact=True).check()
        segment = page.get_by_label("Segment (policy)")
        _wait_for(lambda: segment.input_value() == "At Risk", timeout=20)
        page.get_by_label("Name").fill("browser-policy")
        page.get_by_role("button", name="Start", exact=True).click()
        note.get_by_text("(running, policy on At Risk").wait_for(timeout=60_000)
        assert "drafts sent" in note.inner_text()  # the policy table's columns
        page.get_by_role("button", name="Stop", exact=True).click()
        note.get_by_text("(stopped, policy on At Risk").wait_for(timeout=60_000)
        page.close()


def prebuilt_segments(tmp_path):
    """A data dir with segments built from the first 60,000 rows of the shipped orders."""
    import pandas as pd

    from assistant.core.config import REPO_ROOT, load_settings
    from assistant.infra.llm import ScriptedModel
    from assistant.service.assistant import AssistantService

    data = tmp_path / "data"
    orders = tmp_path / "orders.csv"
    pd.read_csv(REPO_ROOT / "data" / "online_retail.csv.gz", nrows=60_000).to_csv(
        orders, index=False)
    AssistantService.from_settings(load_settings(data_dir=data, llm_provider="scripted"),
                                   model=ScriptedModel()).rebuild_segments(orders)
    return data


def _options(page) -> list[str]:
    """Quick-reply buttons under the last message (the way out to free chat left out)."""
    labels = page.locator("#tailor-chat button").all_inner_texts()
    return [t.strip() for t in labels if t.strip() and t.strip() != "Just chat"]


def test_guided_questionnaire_quick_replies_free_text_correction_resume(browser, tmp_path):
    """A new user answers with quick replies and free text, corrects an answer, reloads
    mid-way and resumes, confirms, ends with a segment on the card with sources, and gets
    recommendation cards it can react to."""
    data = prebuilt_segments(tmp_path)
    env = {"TAILOR_ORDERS": str(tmp_path / "orders.csv")}
    with AppProcess(data, provider="scripted", env=env) as app:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(app.url)
        card = page.locator("#tailor-card")
        box = page.locator("#tailor-input textarea")
        page.get_by_role("button", name="Just chat").first.wait_for(timeout=20_000)
        for step in range(25):
            answers = step + 1
            bots = bot_texts(page)
            count = len(bots)
            last = bots[-1]
            if "Confirm" in _options(page):
                break
            options = [o for o in _options(page) if o not in ("Skip", "Don't know", "Go back")]
            if step == 1 and options:  # free typing instead of a click
                box.fill(options[0].lower())
                box.press("Enter")
            elif options:
                page.get_by_role("button", name=options[0], exact=True).first.click()
            else:
                box.fill("about 40 pounds" if "budget" in last.lower() or "£" in last
                         else "skip")
                box.press("Enter")
            _wait_for(lambda n=count: len(bot_texts(page)) > n, timeout=30)
            if answers == 2:  # a correction at any time
                box.fill("actually my region is Europe")
                box.press("Enter")
                _wait_for(lambda: "Europe" in card.inner_text(), timeout=30)
            if answers == 3:  # reload mid-way: same question, same card
                question, facts = bot_texts(page)[-1], card.inner_text()
                page.reload()
                page.get_by_role("button", name="Just chat").first.wait_for(timeout=20_000)
                _wait_for(lambda q=question: bot_texts(page)[-1] == q, timeout=20)
                assert card.inner_text() == facts
        page.get_by_role("button", name="Confirm", exact=True).first.click()
        _wait_for(lambda: "Just chat" not in page.locator("#tailor-chat").inner_text()
                  or page.get_by_role("button", name="Just chat").count() == 0, timeout=30)
        text = card.inner_text()
        assert not any(name in text for name in SEGMENTS if name != "New"), text  # staff's
        assert "Segment" not in text and "sure" not in text
        assert "you said" in text and "region: Europe" in text.replace("**", "")
        # the confirmed summary is followed by recommendations: a message and cards
        cards = page.locator(".tailor-rec")
        _wait_for(lambda: cards.count() >= 3, timeout=120)
        assert any("£" in t for t in bot_texts(page)[-1:])
        first = cards.first.inner_text()
        cards.first.get_by_role("button", name="Not for me").click()
        _wait_for(lambda: cards.count() >= 3 and cards.first.inner_text() != first, timeout=30)
        assert all(first.splitlines()[0] not in c for c in cards.all_inner_texts())
        # "Show me": the product's details under the cards (logged as a click)
        name = cards.first.inner_text().splitlines()[0].split(" · ")[0]
        cards.first.get_by_role("button", name="Show me").click()
        details = page.locator("#tailor-item-details")
        _wait_for(lambda: name in details.inner_text(), timeout=30)
        assert "customers" in details.inner_text()
        shot(page, tmp_path / "questionnaire.png", "chat")
        page.close()


def test_returning_customer_links_orders_and_card_shows_sources(browser, tmp_path):
    data = prebuilt_segments(tmp_path)
    with AppProcess(data, provider="scripted") as app:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(app.url)
        page.get_by_role("button", name="Just chat").first.wait_for(timeout=20_000)
        # a customer number alone links nothing: the proof is asked for
        page.get_by_text("Ordered from us before?").click()
        page.locator("#tailor-customer-id textarea, #tailor-customer-id input").first.fill(
            "17850")
        page.get_by_role("button", name="Use my order history").click()
        page.get_by_text("we need proof it is you").first.wait_for(timeout=10_000)
        page.get_by_text("Ordered from us before?").click()  # it stays open: close it
        link_customer(page, "17850", "536365")
        card = page.locator("#tailor-card")
        _wait_for(lambda: card.inner_text().count("from your orders") >= 4, timeout=20)
        shown = card.inner_text()
        assert "Segment" not in shown  # the staff's segment name is not for the customer
        assert not any(name in shown for name in SEGMENTS if name != "New"), shown
        # an unknown number is a clear notice (the same as a wrong proof) and changes nothing
        page.locator("#tailor-customer-id textarea, #tailor-customer-id input").first.fill(
            "nobody")
        page.locator("#tailor-proof input, #tailor-proof textarea").first.fill("536365")
        page.get_by_role("button", name="Use my order history").click()
        page.get_by_text("We could not verify that").first.wait_for(timeout=10_000)
        page.close()


def test_agent_desk_streams_a_cited_checked_draft(browser, tmp_path, staff_shop):
    """An agent signs in, opens a real customer, pastes a ticket about a late order and gets
    a streamed, cited draft from the local model, checked against the customer's records;
    editing the ticket while a draft is written discards that draft."""
    from assistant.infra.store import Store
    from tests.conftest import copy_shop

    data, orders = copy_shop(staff_shop, tmp_path / "shop")
    add_user(data, "alex", "agent")
    # what the customer typed in a chat (issue 15: inert on the desk, no live link or image)
    store = Store(data / "tailor.sqlite3")
    said = ("[claim your refund](https://evil.example/x) ![](https://evil.example/p.png) "
            "<b>bold</b> https://evil.example/y")
    store.save_profile(store.create_session().id, document="Interests: candles.",
                       facts={"anything_else": {"value": said, "source": "said",
                                                "confidence": 1.0}},
                       customer_id="17850", segment=None, behaviour=None)
    with AppProcess(data, provider="local", env={"TAILOR_ORDERS": str(orders)}) as app:
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        login(page, app.url, "alex")
        page.locator("#tailor-desk-customer textarea, #tailor-desk-customer input").first.fill(
            "17850")
        page.get_by_role("button", name="Open", exact=True).click()
        sidebar = page.locator("#tailor-desk-sidebar")
        _wait_for(lambda: "Recent orders" in sidebar.inner_text(), timeout=60)
        assert "claim your refund" in sidebar.inner_text()
        assert sidebar.locator("a[href*='evil'], img[src*='evil'], b").count() == 0
        ticket = page.locator("#tailor-ticket textarea")
        ticket.fill("Hello, I ordered a week ago and my order still hasn't arrived. "
                    "Where is it? <b>Please</b> help.")
        page.get_by_role("button", name="Draft reply").click()
        status = page.locator("#tailor-draft-status")
        _wait_for(lambda: "Status:" in status.inner_text(), timeout=180)
        draft = page.locator("#tailor-draft textarea").input_value()
        assert len(draft) > 40
        assert "intent" in status.inner_text()
        page.get_by_text("Sources [n] used in the draft").click()
        assert "[1]" in page.locator("#tailor-draft-citations").inner_text()
        shot(page, tmp_path / "desk.png", "agent-desk")
        # sent, then the ticket marked resolved (a desk outcome the Insights tab counts)
        page.get_by_role("button", name="Save as final").click()
        _wait_for(lambda: "Status: final" in status.inner_text(), timeout=30)
        page.get_by_role("button", name="Ticket resolved").click()
        _wait_for(lambda: "ticket resolved by" in status.inner_text(), timeout=30)
        assert any(d["resolved_at"] for d in store.drafts_for("17850"))
        # a new draft, then the ticket changes while it is being written: discarded
        page.get_by_role("button", name="Regenerate").click()
        _wait_for(lambda: "Writing" in status.inner_text(), timeout=60)
        ticket.fill("Actually, I want to change my delivery address.")
        _wait_for(lambda: any(d["status"] == "discarded"
                              for d in store.drafts_for("17850")), timeout=60)
        page.close()


def test_prompt_studio_edit_preview_stage_promote_rollback(browser, tmp_path, staff_shop):
    """An ops user edits the recommendation template in the studio (live validation, diff),
    previews it for real customers of three segments and runs it on the model, runs its
    tests, sends it to staging for 50%, promotes it and rolls it back, while a customer's
    chat in another browser context keeps getting suggestions and switches versions."""
    from assistant.infra.store import Store
    from tests.conftest import copy_shop

    data, orders = copy_shop(staff_shop, tmp_path / "shop")
    add_user(data, "olivia", "ops")
    with AppProcess(data, provider="scripted", env={"TAILOR_ORDERS": str(orders)}) as app:
        store = Store(data / "tailor.sqlite3")

        def rec_versions() -> list[str]:
            return [c.template_version for c in store.llm_calls(200)
                    if c.template_name == "recommendation" and c.session_id != "prompt-preview"]

        # a shopper's chat, in its own browser context
        shopper = browser.new_context().new_page()
        shopper.goto(app.url)
        shopper.get_by_role("button", name="Just chat").first.wait_for(timeout=20_000)
        link_customer(shopper, "17850", "536365")

        def shopper_suggests() -> str:
            """Click "Show suggestions" until a new message is written (a click while the
            last suggestion still streams is dropped: a button's trigger mode is "once")."""
            before = len(rec_versions())
            deadline = time.monotonic() + 60
            while len(rec_versions()) <= before:
                assert time.monotonic() < deadline, "no suggestion within 60 s"
                shopper.locator("#tailor-suggest").click()
                end = time.monotonic() + 5
                while len(rec_versions()) <= before and time.monotonic() < end:
                    time.sleep(0.1)
            return rec_versions()[0]

        assert shopper_suggests() == "v1"

        page = browser.new_context(viewport={"width": 1400, "height": 1500}).new_page()
        login(page, app.url, "olivia")
        page.get_by_role("tab", name="Prompt studio").click()
        page.locator("#tailor-studio-template input").click()
        page.get_by_role("option", name="recommendation").click()
        header = page.locator("#tailor-studio-header")
        _wait_for(lambda: "recommendation" in header.inner_text() and "v1" in
                  header.inner_text(), 30)
        # edit in the code editor: a typo is caught as you type, then the real change
        editor = page.locator("#tailor-studio-editor .cm-content")
        body = store.template_version("recommendation", 1)["body"]
        editor.click()
        page.keyboard.press("Control+a")
        page.keyboard.insert_text(body.replace("{{profile}}", "{{profle}}"))
        validation = page.locator("#tailor-studio-validation")
        _wait_for(lambda: "profle" in validation.inner_text(), 20)
        editor.click()
        page.keyboard.press("Control+a")
        page.keyboard.insert_text(body.replace("Write one short, warm message",
                                               "Write one short, cheerful message"))
        _wait_for(lambda: "Valid" in validation.inner_text(), 20)
        diff = page.locator("#tailor-studio-diff")
        _wait_for(lambda: "cheerful" in diff.locator(".tailor-diff-add").all_inner_texts()[0]
                  if diff.locator(".tailor-diff-add").count() else False, 20)
        assert "warm" in " ".join(diff.locator(".tailor-diff-del").all_inner_texts())
        page.screenshot(path=str(tmp_path / "studio-edit.png"), full_page=True)
        page.locator("#tailor-studio-note textarea").fill("cheerful wording")
        page.locator("#tailor-studio-save").click()
        status = page.locator("#tailor-studio-save-status")
        _wait_for(lambda: "Saved v2" in status.inner_text(), 20)

        # preview for three segments, side by side, then a run on the model
        page.get_by_role("tab", name="Preview").click()
        page.locator("#tailor-studio-render").click()
        preview = page.locator("#tailor-studio-preview")
        _wait_for(lambda: preview.locator(".card").count() == 3, 60)
        titles = preview.locator("h4").all_inner_texts()
        assert [t.split(" · ")[0] for t in titles] == ["Champions", "New", "At Risk"]
        assert all("cheerful" in c for c in preview.locator(".card").all_inner_texts())
        page.locator("#tailor-studio-run").click()
        _wait_for(lambda: preview.get_by_text("tokens in").count() == 3, 90)
        text = preview.inner_text()
        assert "ms" in text and "grounded" in text
        shot(page, tmp_path / "studio-preview.png", "prompt-studio")

        # tests on v2
        page.get_by_role("tab", name="Tests").click()
        page.locator("#tailor-studio-run-tests").click()
        tests_status = page.locator("#tailor-studio-tests-status")
        _wait_for(lambda: "pass rate" in tests_status.inner_text(), 60)
        assert "v2" in tests_status.inner_text()
        passed = "all pass" in tests_status.inner_text()

        # staging for half of the sessions, then production, then a rollback
        page.get_by_role("tab", name="Rollout").click()
        page.locator("#tailor-studio-stage").click()
        rollout = page.locator("#tailor-studio-rollout-status")
        _wait_for(lambda: "staging → v2 for 50%" in rollout.inner_text(), 20)
        assert "staging" in page.locator("#tailor-studio-audit").inner_text()
        assert shopper_suggests() in ("v1", "v2")  # the chat keeps working
        if not passed:  # the echoing scripted model fails a case: override with a reason
            page.locator("#tailor-studio-promote").click()
            _wait_for(lambda: "blocked" in rollout.inner_text(), 20)
            page.get_by_label("Override failing tests (logged)").check()
            page.locator("#tailor-studio-reason textarea").fill("scripted model in the test")
        page.locator("#tailor-studio-promote").click()
        _wait_for(lambda: "production → v2" in rollout.inner_text(), 20)
        _wait_for(lambda: shopper_suggests() == "v2", 30)
        page.locator("#tailor-studio-reason textarea").fill("like rate dropped")
        page.locator("#tailor-studio-rollback").click()
        _wait_for(lambda: "rolled back: v2 → v1" in rollout.inner_text(), 20)
        _wait_for(lambda: shopper_suggests() == "v1", 30)
        audit = page.locator("#tailor-studio-audit").inner_text()
        for expected in ("rollback", "like rate dropped", "olivia"):
            assert expected in audit
        page.screenshot(path=str(tmp_path / "studio-rollout.png"), full_page=True)


def test_a_first_sentence_fills_the_card_and_a_support_question_is_answered(
        browser, tmp_path, staff_shop):
    """Issue 14's first message, typed as a new visitor would: the card shows the occasion,
    the recipient, the interest and the budget, the next question is one still unknown; a
    support question in the chat gets the help base's answer with its source, then the
    questionnaire resumes."""
    from tests.conftest import copy_shop

    data, orders = copy_shop(staff_shop, tmp_path / "shop")
    with AppProcess(data, provider="scripted", env={"TAILOR_ORDERS": str(orders)}) as app:
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(app.url)
        card = page.locator("#tailor-card")
        box = page.locator("#tailor-input textarea")
        page.get_by_text("What are you looking for today?").first.wait_for(timeout=30_000)
        box.fill("Hi! I'm looking for a birthday present for my mum, she loves candles. "
                 "Budget about 20 pounds.")
        box.press("Enter")
        page.get_by_text("Got it: a birthday gift for your mum").first.wait_for(timeout=30_000)
        _wait_for(lambda: all(w in card.inner_text() for w in
                              ("Birthday", "Family", "Candles and lights", "£20")), timeout=30)
        asked = bot_texts(page)[-1]
        assert "occasion" not in asked.lower() and "who is it for" not in asked.lower()
        shot(page, tmp_path / "first-sentence.png", "chat-first-sentence")
        box.fill("Where is my order? It was supposed to arrive last week.")
        box.press("Enter")
        # the answer and the resumed question (consecutive bubbles may be grouped)
        _wait_for(lambda: "Now, back to your questions:" in " ".join(bot_texts(page)[-2:]),
                  timeout=30)
        tail = " ".join(bot_texts(page)[-2:])
        assert "Source: help article" in tail
        assert tail.index("Source: help article") < tail.index("Now, back to your questions:")
        page.close()


def test_download_and_erase_my_data(browser, tmp_path):
    """Issue 15: the chat's "Your data" panel says what is kept; "Download my data" gives a
    JSON file with what was said; "Erase my data" removes it from every file of the data
    dir and starts an empty chat."""
    import json

    data = tmp_path / "data"
    with AppProcess(data, provider="scripted") as app:
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(app.url)
        box = page.locator("#tailor-input textarea")
        page.get_by_text("What are you looking for today?").first.wait_for(timeout=30_000)
        box.fill("a present for my cousin Plimberly, she loves notebooks")
        box.press("Enter")
        page.get_by_text("Got it").first.wait_for(timeout=30_000)
        page.get_by_text("Your data", exact=True).click()
        notice = page.locator("#tailor-privacy")
        notice.wait_for(timeout=10_000)
        assert "Erase my data" in notice.inner_text()
        page.get_by_role("button", name="Download my data").click()
        link = page.locator("#tailor-export a").first
        link.wait_for(timeout=20_000)
        with page.expect_download() as got:
            link.click()
        exported = json.loads(Path(got.value.path()).read_text())
        assert any("Plimberly" in m["content"] for m in exported["messages"])
        # a product's details are on screen: they go with the chat
        page.locator("#tailor-suggest").click()
        cards = page.locator(".tailor-rec")
        _wait_for(lambda: cards.count() >= 1, timeout=120)
        cards.first.get_by_role("button", name="Show me").click()
        details = page.locator("#tailor-item-details")
        _wait_for(lambda: "customers" in details.inner_text(), timeout=30)
        page.get_by_role("button", name="Erase my data").click()
        page.get_by_text("Erased:").first.wait_for(timeout=30_000)
        _wait_for(lambda: details.inner_text().strip() == "", timeout=20)
        _wait_for(lambda: "Plimberly" not in " ".join(bot_texts(page))
                  and "Plimberly" not in page.locator("#tailor-chat").inner_text(), timeout=20)
        holding = [p for p in data.rglob("*") if p.is_file() and b"Plimberly" in p.read_bytes()]
        assert holding == []
        page.close()
