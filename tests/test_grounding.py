"""prompts/grounding.py: invented products, wrong prices, unknown order ids, amounts, dates and
promises are caught; supported claims pass."""

from datetime import date

import pytest

from assistant.prompts.grounding import Candidate, Facts, check, highlight, money_mentions

CANDIDATES = [Candidate("WHITE HANGING HEART T-LIGHT HOLDER", 2.95),
              Candidate("JUMBO BAG RED RETROSPOT", 2.08)]
CATALOG = [c.name for c in CANDIDATES] + ["REGENCY CAKESTAND 3 TIER", "PARTY BUNTING"]


def rec_facts() -> Facts:
    return Facts(products=CANDIDATES, catalog=CATALOG)


def test_supported_recommendation_passes():
    text = ("You might love the White Hanging Heart T-Light Holder (£2.95) for cosy evenings, "
            "and the Jumbo Bag Red Retrospot at £2.08 is handy for shopping.")
    verdict = check(text, rec_facts())
    assert verdict.ok, verdict.summary()


def test_product_from_the_catalog_that_was_not_recommended_is_caught():
    verdict = check("Try the Regency Cakestand 3 Tier too!", rec_facts())
    assert verdict.kinds() == ["product"]
    assert verdict.flags[0].text == "Regency Cakestand 3 Tier"


def test_wrong_price_and_invented_priced_item_are_caught():
    wrong = check("The White Hanging Heart T-Light Holder is just £1.50.", rec_facts())
    assert [f.kind for f in wrong.flags] == ["price"] and wrong.flags[0].text == "£1.50"
    invented = check("A lovely blue teapot for £12 would suit her.", rec_facts())
    assert [f.kind for f in invented.flags] == ["price"]


def test_money_mentions_forms():
    assert [m[0] for m in money_mentions("£1,200.50, 3 GBP, $4 and 5 pounds")] == [
        1200.5, 3.0, 4.0, 5.0]


def draft_facts(**kw) -> Facts:
    base = dict(amounts=[23.40], order_ids=["581587"], dates=[date(2011, 12, 9)])
    base.update(kw)
    return Facts(**base)


def test_draft_with_supported_facts_passes():
    text = ("I can see your order #581587 of 9 December 2011 for £23.40. "
            "We cannot offer a refund before it arrives, but I will chase the courier.")
    verdict = check(text, draft_facts())
    assert verdict.ok, verdict.summary()


@pytest.mark.parametrize("text, kind, span", [
    ("Your order 123456 is on its way.", "order_id", "123456"),
    ("Your order #C581999 was cancelled.", "order_id", "#C581999"),
    ("You paid £99.99 for it.", "amount", "£99.99"),
    ("It shipped on 2011-11-30.", "date", "2011-11-30"),
    ("It shipped on March 3rd.", "date", "March 3rd"),
    ("I have issued a full refund to your card.", "promise", "full refund"),
    ("Here is a 50% discount on your next order.", "promise", "discount"),
    ("We'll send you a replacement with free shipping.", "promise", "free shipping"),
])
def test_unsupported_draft_claims_are_caught(text, kind, span):
    verdict = check(text, draft_facts())
    assert kind in verdict.kinds(), verdict
    assert span in [f.text for f in verdict.flags]


def test_allowed_discount_within_limit_passes_and_above_is_caught():
    facts = draft_facts(promises={"discount": 10})
    assert check("As a thank-you, here is a 10% discount code.", facts).ok
    over = check("As a thank-you, here is a 25% discount code.", facts)
    assert [f.text for f in over.flags] == ["25%"]


def test_phone_numbers_are_not_order_ids():
    text = "Call us on 0800 123 4567 or 02079460000."
    facts = draft_facts()
    facts.contacts = ["0800 123 4567", "020 7946 0000"]
    assert check(text, facts).ok


@pytest.mark.parametrize(("text", "flagged"), [
    ("Reset it at https://evil.example.net/login now.", "https://evil.example.net/login"),
    ("Email your card number to help@not-the-shop.com please.", "help@not-the-shop.com"),
    ("Ring our fraud team on +1 (555) 010-9999.", "+1 (555) 010-9999"),
    ("Go to www.phish.co.uk to track your parcel.", "www.phish.co.uk"),
])
def test_links_emails_and_phone_numbers_not_in_the_context_are_flagged(text, flagged):
    """Issue 15: a model steered by a ticket must not send the customer elsewhere."""
    facts = draft_facts()
    facts.contacts = ["https://tailorgifts.example", "support@tailorgifts.example",
                      "+44 20 7946 0000"]
    verdict = check(text, facts)
    assert [(f.kind, f.text) for f in verdict.flags] == [("contact", flagged)]


def test_the_shops_own_contacts_from_the_context_pass():
    facts = draft_facts()
    facts.contacts = ["https://tailorgifts.example", "support@tailorgifts.example",
                      "+44 20 7946 0000"]
    text = ("See https://tailorgifts.example/returns, write to SUPPORT@tailorgifts.example "
            "or call +44 (0)20 7946 0000.")
    assert [f.text for f in check(text, facts).flags] == ["+44 (0)20 7946 0000"]
    assert check("See https://tailorgifts.example/returns or call +44 20 7946 0000.",
                 facts).ok


def test_highlight_wraps_flagged_spans():
    text = "Your order 123456 cost £5."
    out = highlight(text, check(text, draft_facts()))
    assert out == "Your order **[123456]** cost **[£5]**."


def test_other_catalog_names_inside_an_allowed_name_are_not_flagged():
    facts = Facts(products=[Candidate("PAPER CHAIN KIT VINTAGE CHRISTMAS", 2.95)],
                  catalog=["PAPER CHAIN KIT VINTAGE CHRISTMAS", "KIT VINTAGE CHRISTMAS",
                           "GIFT BAG"])
    assert check("The Paper Chain Kit Vintage Christmas at £2.95 and a gift bag.", facts).ok
