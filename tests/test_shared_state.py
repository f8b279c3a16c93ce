"""What several app processes share through the store: the first-run build lease and the
rate limits (the store side is tested on both engines in test_store_engines.py)."""

from __future__ import annotations

import threading
import time

from assistant.service.assistant import AssistantService
from assistant.service.bootstrap import LEASE
from assistant.service.limits import RateLimiter


def test_a_process_waits_while_another_holds_the_build_lease(service: AssistantService,
                                                             monkeypatch) -> None:
    ran: list[str] = []
    monkeypatch.setattr(service.bootstrap, "_builds",
                        lambda holder: ran.append(holder) or {"segments": "not needed"})
    assert service.store.take_lease(LEASE, "other-process", 60) == "other-process"
    worker = threading.Thread(target=service.bootstrap.first_run_builds,
                              kwargs={"poll": 0.05})
    worker.start()
    deadline = time.monotonic() + 10
    while "waiting" not in service.bootstrap.status.get("segments", ""):
        assert time.monotonic() < deadline, service.bootstrap.status
        time.sleep(0.02)
    assert "other-process" in service.bootstrap.status["segments"] and ran == []
    service.store.release_lease(LEASE, "other-process")
    worker.join(10)
    assert not worker.is_alive() and len(ran) == 1
    # released when done: the next process may take it at once
    assert service.store.take_lease(LEASE, "next", 60) == "next"


def test_chat_pace_and_api_calls_are_counted_in_the_store(service: AssistantService) -> None:
    assert service.chats.pace.store is service.store
    limit = service.settings.requests_per_minute
    assert all(service.allow_call("10.0.0.9") for _ in range(limit))
    assert service.allow_call("10.0.0.9") is False and service.allow_call("10.0.0.8")
    other = RateLimiter(limit, store=service.store)  # another process's limiter
    assert other.hit("10.0.0.9") is False


def test_segments_rebuilt_by_another_process_are_followed(staff_shop, tmp_path,
                                                          monkeypatch) -> None:
    """Two processes share the artefacts directory: when the other one swaps in a new
    segments bundle (the pointer file names another folder), this one loads it."""
    import shutil

    from assistant.infra.artifacts import current_bundle_path
    from assistant.segments.model import SEGMENTS_KIND
    from assistant.service import parts as parts_module
    from tests.conftest import copy_shop, shop_service

    monkeypatch.setattr(parts_module, "FOLLOW_SECONDS", 0.0)
    data, orders = copy_shop(staff_shop, tmp_path / "shop")
    svc = shop_service((data, orders))
    before = svc.parts.segment_model()
    assert svc.parts.segment_model() is before  # nothing changed: kept
    artifacts = svc.settings.artifacts_dir
    old = current_bundle_path(artifacts, SEGMENTS_KIND)
    new = artifacts / f"{SEGMENTS_KIND}-rebuiltelsewhere"
    shutil.copytree(old, new)
    (artifacts / f"{SEGMENTS_KIND}.current").write_text(new.name)  # the other's swap
    after = svc.parts.segment_model()
    assert after is not before and svc.parts._segments_from == new


def test_a_database_down_at_start_stops_the_command_with_a_clear_message(tmp_path,
                                                                         monkeypatch) -> None:
    """What `assistant serve` (or any command) prints when TAILOR_DATABASE_URL points at a
    server that is not there: after retrying for TAILOR_DATABASE_CONNECT_TIMEOUT seconds,
    one error and one hint naming the setting, never the password; exit code 2."""
    from typer.testing import CliRunner

    from assistant.cli import app
    from tests.apprunner import free_port

    monkeypatch.setenv("TAILOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TAILOR_DATABASE_URL",
                       f"postgresql://tailor:hunter2@127.0.0.1:{free_port()}/tailor")
    monkeypatch.setenv("TAILOR_DATABASE_CONNECT_TIMEOUT", "1")
    result = CliRunner().invoke(app, ["users", "list"])
    assert result.exit_code == 2, result.output
    assert "TAILOR_DATABASE_URL" in result.output and "after 1 s" in result.output
    assert "hunter2" not in result.output and "Traceback" not in result.output


def test_behind_a_proxy_the_forwarded_client_address_counts(service, monkeypatch) -> None:
    """uvicorn believes X-Forwarded-For from TAILOR_TRUSTED_PROXIES only (what the rate
    limits and lockouts then see as the client)."""
    import uvicorn

    from assistant.ui import server

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs))
    service.settings.trusted_proxies = "10.0.0.2"
    server.launch(service)
    assert seen["proxy_headers"] is True and seen["forwarded_allow_ips"] == "10.0.0.2"
