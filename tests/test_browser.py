"""A real browser (Debian chromium via Playwright) against the real app and local model."""

import os
import shutil
import time

import pytest

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
        # clear starts a new, empty conversation; the old one stays in SQLite
        # (the warning toast sits on top of the Clear button: dispatch the click to it)
        page.locator("#tailor-chat button[aria-label='Clear']").dispatch_event("click")
        _wait_for(lambda: page.get_by_text("hello there").count() == 0)
        page.get_by_role("button", name="Just chat").first.wait_for(timeout=20_000)
        _wait_for(lambda: _db_rows(data, "SELECT COUNT(*) FROM sessions")[0][0] >= 2)
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

    from assistant.config import REPO_ROOT

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
        page.screenshot(path=str(tmp_path / "segments.png"), full_page=True)
        page.close()


def prebuilt_segments(tmp_path):
    """A data dir with segments built from the first 60,000 rows of the shipped orders."""
    import pandas as pd

    from assistant.config import REPO_ROOT, load_settings
    from assistant.llm import ScriptedModel
    from assistant.service import AssistantService

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
            if "Segment:" in card.inner_text() and "Confirm" in _options(page):
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
        assert "Segment:" in text and "sure" in text
        assert "you said" in text and "region: Europe" in text.replace("**", "")
        # the confirmed summary is followed by recommendations: a message and cards
        cards = page.locator(".tailor-rec")
        _wait_for(lambda: cards.count() >= 3, timeout=120)
        assert any("£" in t for t in bot_texts(page)[-1:])
        first = cards.first.inner_text()
        cards.first.get_by_role("button", name="Not for me").click()
        _wait_for(lambda: cards.count() >= 3 and cards.first.inner_text() != first, timeout=30)
        assert all(first.splitlines()[0] not in c for c in cards.all_inner_texts())
        page.screenshot(path=str(tmp_path / "questionnaire.png"), full_page=True)
        page.close()


def test_returning_customer_links_orders_and_card_shows_sources(browser, tmp_path):
    data = prebuilt_segments(tmp_path)
    with AppProcess(data, provider="scripted") as app:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(app.url)
        page.get_by_role("button", name="Just chat").first.wait_for(timeout=20_000)
        page.get_by_text("Ordered from us before?").click()
        page.locator("#tailor-customer-id textarea, #tailor-customer-id input").first.fill(
            "17850")
        page.get_by_role("button", name="Use my order history").click()
        page.get_by_text("Welcome back!").wait_for(timeout=20_000)
        card = page.locator("#tailor-card")
        _wait_for(lambda: card.inner_text().count("from your orders") >= 4, timeout=20)
        assert "Segment:" in card.inner_text()
        # an unknown number is a clear notice and changes nothing
        page.locator("#tailor-customer-id textarea, #tailor-customer-id input").first.fill(
            "nobody")
        page.get_by_role("button", name="Use my order history").click()
        page.get_by_text("No customer 'nobody'").first.wait_for(timeout=10_000)
        page.close()


def test_agent_desk_streams_a_cited_checked_draft(browser, tmp_path, staff_shop):
    """An agent signs in, opens a real customer, pastes a ticket about a late order and gets
    a streamed, cited draft from the local model, checked against the customer's records;
    editing the ticket while a draft is written discards that draft."""
    from assistant.store import Store
    from tests.conftest import copy_shop

    data, orders = copy_shop(staff_shop, tmp_path / "shop")
    add_user(data, "alex", "agent")
    with AppProcess(data, provider="local", env={"TAILOR_ORDERS": str(orders)}) as app:
        page = browser.new_page(viewport={"width": 1280, "height": 1400})
        login(page, app.url, "alex")
        page.locator("#tailor-desk-customer textarea, #tailor-desk-customer input").first.fill(
            "17850")
        page.get_by_role("button", name="Open", exact=True).click()
        sidebar = page.locator("#tailor-desk-sidebar")
        _wait_for(lambda: "Recent orders" in sidebar.inner_text(), timeout=60)
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
        page.screenshot(path=str(tmp_path / "desk.png"), full_page=True)
        # a new draft, then the ticket changes while it is being written: discarded
        page.get_by_role("button", name="Regenerate").click()
        _wait_for(lambda: "Writing" in status.inner_text(), timeout=60)
        ticket.fill("Actually, I want to change my delivery address.")
        store = Store(data / "tailor.sqlite3")
        _wait_for(lambda: any(d["status"] == "discarded"
                              for d in store.drafts_for("17850")), timeout=60)
        page.close()
