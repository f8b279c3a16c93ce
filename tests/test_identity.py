"""Issue 15, verified linking (service/identity.py, service/limits.py, infra/mail.py): a
customer number or an email alone never links a chat session to a customer's orders; the
proof is one of their order numbers, or a one-time code sent to the email (the file outbox
here). Unknown customer and wrong proof read the same; wrong proofs are limited per session
and per client address, with a lockout that expires; nothing of the orders shows before."""

from __future__ import annotations

import email
from pathlib import Path

import pytest

from assistant.core.config import load_settings
from assistant.core.errors import InputError
from assistant.infra.llm import ScriptedModel
from assistant.infra.mail import FileOutbox, outbox_for
from assistant.service.assistant import AssistantService
from tests.conftest import copy_shop, order_of

CUSTOMER = "17850"


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory, staff_shop: Path) -> tuple[Path, Path]:
    return copy_shop(staff_shop, tmp_path_factory.mktemp("identity") / "shop")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def svc(shop: tuple[Path, Path], tmp_path: Path) -> AssistantService:
    data, orders = shop
    emails = tmp_path / "emails.csv"
    emails.write_text(f"customer_id,email\n{CUSTOMER},Jo@Example.com\n")
    settings = load_settings(data_dir=data, llm_provider="scripted", orders=orders,
                             customer_emails=emails, link_attempts=3,
                             link_attempts_per_client=5, lockout_minutes=10)
    service = AssistantService.from_settings(settings, model=ScriptedModel(["(model)"]))
    service.parts.identity.limiter.clock = Clock()
    service.parts.identity.outbox = FileOutbox(tmp_path / "outbox")
    return service


def refusal(svc: AssistantService, sid: str, who: str, proof: str,
            client: str | None = None) -> str:
    with pytest.raises(InputError) as err:
        svc.identify(sid, who, proof, client=client)
    return err.value.for_user()


def nothing_of_the_orders(svc: AssistantService, sid: str) -> bool:
    card = svc.profile(sid)
    return card.customer_id is None and not {"observed", "inferred"} & {
        f.source for f in card.facts}


def codes(svc: AssistantService) -> list[str]:
    outbox = svc.parts.identity.outbox
    assert isinstance(outbox, FileOutbox)
    out = []
    for path in outbox.messages():
        msg = email.message_from_bytes(path.read_bytes())
        body = msg.get_payload(decode=True).decode()
        out.append((msg["To"], body.split("Your code is ")[1][:6]))
    return out


def test_a_customer_number_alone_never_links(svc: AssistantService) -> None:
    sid = svc.new_session()
    with pytest.raises(InputError, match="proof"):
        svc.identify(sid, CUSTOMER, "")
    assert nothing_of_the_orders(svc, sid)


def test_an_order_number_of_theirs_links_and_fills_the_card(svc: AssistantService) -> None:
    sid = svc.new_session()
    out = svc.identify(sid, CUSTOMER, f"#{order_of(svc, CUSTOMER)}")
    assert out.card.customer_id == CUSTOMER
    assert {"observed", "inferred"} & {f.source for f in out.card.facts}
    assert "Welcome back" in out.turn.message


def test_unknown_customer_and_wrong_proof_read_the_same(svc: AssistantService) -> None:
    other = next(c for c in svc.parts.orders()["customer"].unique() if c != CUSTOMER)
    someone_elses = order_of(svc, other)
    replies = {
        refusal(svc, svc.new_session(), "99999999", "536365"),  # no such customer
        refusal(svc, svc.new_session(), CUSTOMER, "000000"),  # no such order
        refusal(svc, svc.new_session(), CUSTOMER, someone_elses),  # another's order
        refusal(svc, svc.new_session(), "no-such-customer", someone_elses),
    }
    assert len(replies) == 1 and "could not verify" in replies.pop()


def test_wrong_proofs_lock_the_session_out_for_a_while(svc: AssistantService) -> None:
    sid = svc.new_session()
    for _ in range(3):
        assert "could not verify" in refusal(svc, sid, CUSTOMER, "123")
    right = order_of(svc, CUSTOMER)
    # locked: even the right proof waits, and the wait is said
    assert "Too many" in refusal(svc, sid, CUSTOMER, right)
    assert "10 minutes" in refusal(svc, sid, CUSTOMER, right)
    assert nothing_of_the_orders(svc, sid)
    # another session is not locked; the lockout expires
    assert svc.identify(svc.new_session(), CUSTOMER, right).card.customer_id == CUSTOMER
    svc.parts.identity.limiter.clock.now += 10 * 60 + 1
    assert svc.identify(sid, CUSTOMER, right).card.customer_id == CUSTOMER


def test_one_client_cannot_spread_guesses_over_new_sessions(svc: AssistantService) -> None:
    for k in range(5):  # 5 sessions, one guess each: the client's limit
        refusal(svc, svc.new_session(), CUSTOMER, f"{k}", client="10.0.0.7")
    right = order_of(svc, CUSTOMER)
    assert "Too many" in refusal(svc, svc.new_session(), CUSTOMER, right, client="10.0.0.7")
    ok = svc.identify(svc.new_session(), CUSTOMER, right, client="10.0.0.8")
    assert ok.card.customer_id == CUSTOMER


def test_an_email_gets_a_code_and_the_code_links(svc: AssistantService) -> None:
    sid = svc.new_session()
    sent = svc.identify(sid, " jo@example.COM ", "")
    assert "If that email is on our customer list" in sent.turn.message
    assert nothing_of_the_orders(svc, sid)
    ((to, code),) = codes(svc)
    assert to == "jo@example.COM"
    # a wrong code does not link; the code works only in the session that asked for it
    assert "could not verify" in refusal(svc, sid, "jo@example.com", "000000"
                                         if code != "000000" else "111111")
    assert "could not verify" in refusal(svc, svc.new_session(), "jo@example.com", code)
    out = svc.identify(sid, "jo@example.com", code)
    assert out.card.customer_id == CUSTOMER
    # used once
    assert "could not verify" in refusal(svc, sid, "jo@example.com", code)


def test_an_unknown_email_gets_the_same_reply_and_no_mail(svc: AssistantService) -> None:
    known = svc.identify(svc.new_session(), "jo@example.com", "").turn.message
    unknown = svc.identify(svc.new_session(), "nobody@example.org", "").turn.message
    assert known == unknown
    assert [to for to, _ in codes(svc)] == ["jo@example.com"]


def test_a_code_expires(svc: AssistantService) -> None:
    sid = svc.new_session()
    svc.identify(sid, "jo@example.com", "")
    ((_, code),) = codes(svc)
    svc.parts.identity.limiter.clock.now += svc.settings.link_code_minutes * 60 + 1
    assert "could not verify" in refusal(svc, sid, "jo@example.com", code)


def test_code_requests_count_against_the_limit(svc: AssistantService) -> None:
    sid = svc.new_session()
    for _ in range(3):
        svc.identify(sid, "jo@example.com", "")
    assert "Too many" in refusal(svc, sid, "jo@example.com", "")
    assert len(codes(svc)) == 3


def test_the_outbox_is_a_folder_unless_smtp_is_set(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    assert isinstance(outbox_for(settings), FileOutbox)
    assert outbox_for(settings).describe().endswith("outbox")
    smtp = outbox_for(load_settings(data_dir=tmp_path, smtp_host="mail.example.org"))
    assert smtp.describe() == "SMTP mail.example.org:587"


def test_wrong_passwords_lock_a_staff_account_for_a_while(tmp_path: Path) -> None:
    """Issue 15: after LOGIN_ATTEMPTS wrong passwords the account fails at once, even with
    the right password (no hash is checked), until the lockout expires; the client address
    is counted by the server (tests/test_security.py)."""
    settings = load_settings(data_dir=tmp_path, llm_provider="scripted", login_attempts=3,
                             lockout_minutes=5)
    service = AssistantService.from_settings(settings, model=ScriptedModel())
    service.staff.users.add("alex", "correct-horse-42", "agent")
    clock = Clock()
    service.staff.login_limiter.clock = clock
    assert service.authenticate("alex", "correct-horse-42")
    for _ in range(3):
        assert not service.authenticate("alex", "wrong")
    assert not service.authenticate("alex", "correct-horse-42")
    assert not service.authenticate("ALEX ", "correct-horse-42")  # the same account
    clock.now += 5 * 60 + 1
    assert service.authenticate("alex", "correct-horse-42")
    # a success clears the count
    for _ in range(2):
        assert not service.authenticate("alex", "wrong")
    assert service.authenticate("alex", "correct-horse-42")
    assert not service.authenticate("alex", "wrong")
    assert service.authenticate("alex", "correct-horse-42")
    # the address count of the server
    assert service.login_wait("10.1.1.1") == 0
    for _ in range(settings.login_attempts_per_client):
        service.login_failed("10.1.1.1")
    assert service.login_wait("10.1.1.1") > 0 and service.login_wait("10.1.1.2") == 0


def test_calls_per_minute_in_a_sliding_window() -> None:
    from assistant.service.limits import RateLimiter

    clock = Clock()
    limit = RateLimiter(3, clock=clock)
    assert [limit.hit("a") for _ in range(4)] == [True, True, True, False]
    assert limit.hit("b")  # another key has its own count
    clock.now += 30
    assert not limit.hit("a")
    clock.now += 31  # the first three are a minute old
    assert [limit.hit("a") for _ in range(4)] == [True, True, True, False]


def test_a_session_sending_too_fast_is_asked_to_wait(svc: AssistantService) -> None:
    svc.chats.pace = type(svc.chats.pace)(2)
    sid = svc.new_session()
    svc.guided_view(sid)
    list(svc.turn(sid, "hello"))
    list(svc.turn(sid, "for myself"))
    before = svc.history(sid)
    with pytest.raises(InputError, match="faster than we can read"):
        list(svc.turn(sid, "candles"))
    assert svc.history(sid) == before  # nothing saved, nothing lost
