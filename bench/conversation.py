"""How well the chat understands natural messages, today's reader against the one before.

The set (bench/conversation_set.yaml) was written for this benchmark, independently of the
extractor and its tests. Its items are split in two by position: even items are the *dev*
half (their errors were looked at while writing data/vocabulary.yaml), odd items the
*held-out* half (never looked at item by item). Both halves are printed; the held-out one is
the honest number. Two more sets by other hands: B (conversation_set_b.yaml, split the same
way) and C (conversation_set_c.yaml, all dev).

1. Facts after one message: each opening goes through the real questionnaire engine (the
   shipped spec and vocabulary) as the first message; the facts stored are compared with the
   gold facts (one fact per question, one per interest; a budget is right when its upper
   bound equals the gold number). "before" is the previous behaviour: the first message was
   read only as the answer to the first question (buyer type).

2. Support intent: the desk's intent classifier on its held-out Bitext split (from its
   manifest) and on the set's shop-style questions.
3. Routing: support | shopping | chat for the set's routing messages plus its support
   questions (all support) and openings (shopping, or chat when they state no facts);
   "before" sent every message to the questionnaire (shopping).

4. Desk drafts for real customers of the order data (the set's desk tickets): the draft the
   model writes from the prompt ("before": the embedded model, as the desk did) against the
   composed draft polished by the same model ("now"): clean (nothing flagged), cites a
   passage it was given, names the customer's last order when the ticket asks about it,
   which one is shown, median seconds per draft.
5. Model faults: a chat turn against a local fake OpenAI-compatible server that hangs
   once, hangs for good, answers 500 or 429 for good, or cuts the stream: what the person
   gets and after how many seconds, with today's settings and with the earlier ones (a
   60 s silence timeout).

Needs the trained intent classifier and router (``assistant help train``; the app trains
them at first start).

    .venv/bin/python bench/conversation.py [--show-dev-errors] [--skip desk,faults]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from assistant.core.config import Settings
from assistant.questionnaire.engine import Questionnaire
from assistant.questionnaire.extraction import shipped_extractor
from assistant.questionnaire.parsing import parse_answer
from assistant.questionnaire.spec import QuestionnaireSpec, load_spec
from assistant.questionnaire.state import QuestionnaireState

SET = Path(__file__).with_name("conversation_set.yaml")
# a second set of first messages, written later by another hand for the same purpose; its
# even items became a second dev half (their misreadings were looked at once, and the
# vocabulary and the reader's rules were made more general from them), the odd ones are held
# out
SET_B = Path(__file__).with_name("conversation_set_b.yaml")
# a third set by a third hand, written to be a dev set: its precision was measured once
# untouched (0.931), then its misreadings were read and general rules came from them (a real
# word is no typo, a refused value stays refused, a price per item beats a total, what was
# paid is no budget, someone else's shop is not yours, a place visited is not where you are)
SET_C = Path(__file__).with_name("conversation_set_c.yaml")
# Held-out items that were seen anyway: the first routing run printed its misroutes with a
# parity bug (the halves of the combined list), and these support questions were then
# paraphrased into the brief for data/support_examples.yaml. They count as dev.
SEEN = {
    "my parcel says delivered but there's nothing here", "do you accept apple pay",
    "how much is postage to France?",
    "hi can you tell me where my parcel is? ordered the lanterns last week",
    "I want to swap the red bunting in my order for the blue one, is that possible?",
    "I'd like to order 48 of the heart t-light holders, can you put that through for me?",
    "Do you do click and collect or is it delivery only?",
    "If I order today will it arrive before Christmas?",
    "I sent the candle holders back, can I get a refund please?",
    "what's your returns policy? can I get a refund if my friend doesn't like the gift?",
    "Do you take PayPal or only cards?",
    "My card keeps getting declined at checkout but it works everywhere else",
    "I'd like to leave a review, the cake stand was gorgeous!",
    "Please delete my account and all my details",
    "Hi, my order number is 536365, can I add something to it?",
}


def as_facts(answers: dict[str, Any]) -> set[tuple[str, Any]]:
    """{question: value} -> a set of comparable facts (interests one by one, budget max)."""
    out: set[tuple[str, Any]] = set()
    for qid, value in answers.items():
        if qid == "interests":
            out |= {("interests", v) for v in value}
        elif qid == "budget":
            out.add(("budget", float(value["max"] if isinstance(value, dict) else value)))
        elif qid not in ("looking_for", "anything_else", "email"):
            out.add((qid, value))
    return out


def read_now(spec: QuestionnaireSpec, text: str) -> dict[str, Any]:
    qn = Questionnaire(spec)
    state = QuestionnaireState()
    qn.start(state)
    qn.handle(state, text)
    return state.answers


def read_before(spec: QuestionnaireSpec, text: str) -> dict[str, Any]:
    result = parse_answer(spec.question("buyer_type"), text)
    return {"buyer_type": result.value} if result.ok and not result.confirm else {}


def score(items: list[dict], reader, spec: QuestionnaireSpec) -> dict[str, Any]:
    tp = fp = fn = 0
    errors = []
    started = time.perf_counter()
    for item in items:
        gold = as_facts(item["facts"] or {})
        got = as_facts(reader(spec, item["text"]))
        tp += len(gold & got)
        fp += len(got - gold)
        fn += len(gold - got)
        if got != gold:
            errors.append((item["text"], sorted(got - gold, key=str), sorted(gold - got, key=str)))
    elapsed = time.perf_counter() - started
    return {"precision": tp / (tp + fp) if tp + fp else 1.0,
            "recall": tp / (tp + fn) if tp + fn else 1.0,
            "facts": tp + fn, "messages": len(items), "errors": errors,
            "ms_per_message": 1000 * elapsed / max(len(items), 1)}


def halves(items: list[dict]) -> dict[str, list[dict]]:
    """Dev: even positions within the item's own section, and anything seen; held-out:
    the rest."""
    def dev(k: int, item: dict) -> bool:
        return item.get("_pos", k) % 2 == 0 or item["text"] in SEEN

    return {"dev": [i for k, i in enumerate(items) if dev(k, i)],
            "held-out": [i for k, i in enumerate(items) if not dev(k, i)], "all": items}


def facts_section(data: dict, show_dev_errors: bool) -> None:
    spec = load_spec()
    print("1. Facts on the card after the first message")
    print(f"   {'half':12} {'reader':7} {'msgs':>5} {'facts':>6} {'precision':>10} "
          f"{'recall':>7} {'ms/msg':>7}")
    groups = halves(data["openings"])
    if SET_B.exists():
        b = yaml.safe_load(SET_B.read_text())["openings"]
        groups["B dev"], groups["B held-out"] = b[0::2], b[1::2]
        groups["all held-out"] = groups["held-out"] + groups["B held-out"]
    if SET_C.exists():
        groups["C dev"] = yaml.safe_load(SET_C.read_text())["openings"]
    for half, items in groups.items():
        for name, reader in (("before", read_before), ("now", read_now)):
            s = score(items, reader, spec)
            print(f"   {half:12} {name:7} {s['messages']:5d} {s['facts']:6d} "
                  f"{s['precision']:10.3f} {s['recall']:7.3f} {s['ms_per_message']:7.1f}")
            if show_dev_errors and half in ("dev", "B dev", "C dev") and name == "now":
                for text, extra, missing in s["errors"]:
                    print(f"      {text!r}\n         extra {extra} missing {missing}")


def intent_section(data: dict) -> None:
    from assistant.support.intents import IntentClassifier

    classifier = IntentClassifier.load(Settings().artifacts_dir)
    held = classifier.summary["held_out"]
    print("\n2. Support intent (the desk's classifier)")
    print(f"   Bitext held-out split: accuracy {held['accuracy']:.3f} "
          f"({held['test_rows']} rows)")
    for half, items in halves(data["support"]).items():
        right = sum(classifier.predict(i["text"]).intent == i["intent"] for i in items)
        print(f"   shop-style, {half:9}: {right}/{len(items)} = {right / len(items):.3f}")


def routing_section(data: dict, show_dev_errors: bool) -> None:
    from assistant.support.intents import IntentClassifier
    from assistant.support.routing import Router

    settings = Settings()
    router = Router.load(settings.artifacts_dir, IntentClassifier.load(settings.artifacts_dir))
    reader = shipped_extractor(load_spec())
    items = [{**i, "_pos": k} for k, i in enumerate(data["routing"])]
    items += [{"text": i["text"], "kind": "support", "_pos": k}
              for k, i in enumerate(data["support"])]
    items += [{"text": i["text"], "kind": "shopping" if i["facts"] else "chat", "_pos": k}
              for k, i in enumerate(data["openings"])]
    print("\n3. Routing (support | shopping | chat)")
    print(f"   router held-out split: accuracy {router.summary['held_out']['accuracy']:.3f}")
    for half, part in halves(items).items():
        now = before = 0
        wrong = []
        for item in part:
            facts = bool(reader.extract(item["text"]))
            got = router.route(item["text"], facts=facts).kind
            now += got == item["kind"]
            before += item["kind"] == "shopping"
            if got != item["kind"]:
                wrong.append((item["text"], item["kind"], got))
        n = len(part)
        print(f"   {half:9}: now {now}/{n} = {now / n:.3f}   before {before}/{n} = "
              f"{before / n:.3f}")
        if show_dev_errors and half == "dev":
            for text, gold, got in wrong:
                print(f"      {text!r}: {gold} -> {got}")


def desk_section(data: dict) -> None:
    from assistant.service.assistant import AssistantService
    from assistant.support.checks import check_draft
    from assistant.support.desk import TEMPLATE
    from assistant.support.injection import detect_injection

    svc = AssistantService.from_settings(Settings())
    svc.bootstrap.ensure_segments()  # the segment policy, as after the app's first start
    desk = svc.staff.desk
    tickets = data["desk_tickets"]
    rows: dict[str, list[dict]] = {"before": [], "now": []}
    for t in tickets:
        cid, ticket = t["customer_id"], t["text"]
        # before: the model writes the whole draft from the prompt (no composed draft)
        started = time.perf_counter()
        ctx = desk._context(cid, ticket)
        tpl = desk.templates.get(TEMPLATE)
        prompt = desk._prompt(tpl, ctx, ticket, "neutral", None, "",
                              bool(detect_injection(ticket)))
        text = desk.llm.complete(prompt.messages, prompt.params).strip()
        flags = check_draft(text, ctx.facts, len(ctx.citations))
        rows["before"].append(dict(
            clean=not flags, cited=any(f"[{c['n']}]" in text for c in ctx.citations),
            names=t["last_order"] in text, asks=t["asks_last_order"], shown="model",
            seconds=time.perf_counter() - started))
        started = time.perf_counter()
        run = desk.start_draft(agent="bench", customer_id=cid, ticket=ticket)
        list(run)
        r = run.result
        rows["now"].append(dict(
            clean=r["status"] == "clean", cited=any(c["used"] for c in r["citations"]),
            names=t["last_order"] in r["text"], asks=t["asks_last_order"], shown=r["shown"],
            seconds=time.perf_counter() - started))
    print(f"\n4. Desk drafts for {len(tickets)} tickets of real customers "
          f"(model: {svc.model_label()})")
    print(f"   {'':7} {'clean':>6} {'cites':>6} {'names last order':>17} {'shown':>22} "
          f"{'median s':>9}")
    for name, rs in rows.items():
        asks = [r for r in rs if r["asks"]]
        shown = {k: sum(r["shown"] == k for r in rs) for k in ("model", "composed",
                                                                "polished")}
        shown_text = ", ".join(f"{k} {v}" for k, v in shown.items() if v)
        print(f"   {name:7} {sum(r['clean'] for r in rs):3d}/{len(rs):<2d} "
              f"{sum(r['cited'] for r in rs):3d}/{len(rs):<2d} "
              f"{sum(r['names'] for r in asks):10d}/{len(asks):<6d} {shown_text:>22} "
              f"{statistics.median(r['seconds'] for r in rs):9.2f}")
    both = [b["clean"] and b["cited"] and (b["names"] or not b["asks"])
            for b in rows["now"] if b["asks"]][:10]
    print(f"   now, first 10 'last order' tickets named, cited and clean: {sum(both)}/10")


def faults_section() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from assistant.core.config import load_settings
    from assistant.service.assistant import AssistantService
    from tests.fake_openai import FakeOpenAIServer, cut, hang, reply

    hello = "Hello! Lovely to hear from you."
    cases = [("hang once", [hang(seconds=90), reply(hello)], None),
             ("hang for good", [], hang(seconds=90)),
             ("500 for good", [], "500"), ("429 for good", [], "429"),
             ("cut once", [cut(after=2, text="Half a sentence that"), reply(hello)], None),
             ("cut for good", [], cut(after=2, text="Cut again and again"))]
    print("\n5. Model faults in a chat turn (fake OpenAI-compatible server, 2 retries)")
    print("   (the earlier code showed an error bubble after the retries for 500, 429 and a "
          "cut stream;\n    'with 60 s' runs today's code with the earlier silence timeout)")
    print(f"   {'fault':14} {'now: answer':>18} {'s':>6}   {'with 60 s: answer':>22} "
          f"{'s':>6}")
    tmp = tempfile.mkdtemp(prefix="tailor-faults-")
    with FakeOpenAIServer() as fake:
        for name, script, then in cases:
            out = {}
            for label, timeout in (("now", None), ("before", 60.0)):
                if label == "before" and name in ("hang for good",):
                    out[label] = ("(skipped: 3 x 60 s)", float("nan"))
                    continue
                extra = {} if timeout is None else {"llm_first_token_timeout": timeout}
                settings = load_settings(data_dir=Path(tmp) / f"{name}-{label}",
                                         llm_provider="openai", openai_base_url=fake.base_url,
                                         llm_model="fake", questionnaire_model="off", **extra)
                svc = AssistantService.from_settings(settings)
                sid = svc.new_session()
                svc.guided.view(sid)
                list(svc.turn(sid, "just chat"))
                fake.script(list(script), then=then if then is not None else reply(hello))
                started = time.perf_counter()
                try:
                    text = [u for u in svc.turn(sid, "how are you today?")][-1].text
                    got = "model reply" if text == hello else "standard reply"
                except Exception as exc:  # noqa: BLE001 - what "before" did
                    got = f"error bubble ({type(exc).__name__})"
                out[label] = (got, time.perf_counter() - started)
                svc.parts.profile_writer().flush()
            print(f"   {name:14} {out['now'][0]:>18} {out['now'][1]:6.1f}   "
                  f"{out['before'][0]:>22} {out['before'][1]:6.1f}")
    shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show-dev-errors", action="store_true",
                        help="print the dev half's misreadings (never the held-out half's)")
    parser.add_argument("--skip", default="", help="sections to skip: desk,faults")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    data = yaml.safe_load(SET.read_text())
    facts_section(data, args.show_dev_errors)
    intent_section(data)
    routing_section(data, args.show_dev_errors)
    if "desk" not in skip:
        desk_section(data)
    if "faults" not in skip:
        faults_section()


if __name__ == "__main__":
    main()
