"""Shared fixtures. Tests never use the network beyond 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from assistant.core.config import REPO_ROOT, Settings, load_settings
from assistant.infra.llm import ScriptedModel
from assistant.service.assistant import AssistantService

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def embedding_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache of computed embeddings for the whole run (catalog descriptions are
    embedded once, not once per test)."""
    return tmp_path_factory.mktemp("embedding-cache")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, embedding_cache: Path) -> None:
    """No test sees the developer's TAILOR_*/OPENAI_* variables or .env file."""
    for key in list(os.environ):
        if key.startswith("TAILOR_") or key in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("TAILOR_CACHE", str(embedding_cache))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL server for this worker's tests (Debian's binaries; skipped
    locally when they are missing, a failure under CI: ./tailor.sh test installs them)."""
    import shutil
    import tempfile

    from tests.pgcluster import PgCluster, server_bin

    if server_bin() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is missing under CI: ./tailor.sh test installs it with apt")
        pytest.skip("PostgreSQL server binaries are missing (apt-get install postgresql)")
    # not under pytest's basetemp: that is private to root, and the server may run as
    # Debian's postgres user
    root = Path(tempfile.mkdtemp(prefix="tailor-pg-"))
    root.chmod(0o755)
    cluster = PgCluster(root / "cluster")
    try:
        yield cluster.start()
    finally:
        cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_cluster) -> str:
    """A new empty database in the test cluster."""
    return pg_cluster.create_database()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return load_settings(data_dir=tmp_path / "data", llm_provider="scripted")


@pytest.fixture
def scripted() -> ScriptedModel:
    return ScriptedModel(["Hello! How can I help you today?", "Candles make a lovely gift."])


@pytest.fixture
def service(settings: Settings, scripted: ScriptedModel) -> AssistantService:
    return AssistantService.from_settings(settings, model=scripted)


@pytest.fixture(scope="session")
def staff_shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with everything the staff app needs, built once per run from the shipped
    data: segments from the first 60,000 order rows (``orders.csv`` beside it, for
    TAILOR_ORDERS), a small help base (5 passages per intent), the intent classifier and the
    chat's message router.
    Tests copy it (``copy_shop``) so each gets its own stores. Under pytest-xdist the
    workers share one build: the first builds it under a file lock, the others wait and
    reuse it (it is never written after the build)."""
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # this run's folder, above the workers' own
    root = shared / "staff-shop"
    with FileLock(str(shared / "staff-shop.lock")):
        if not (root / "built").is_file():
            _build_staff_shop(root)
            (root / "built").write_text("ok")
    return root


def _build_staff_shop(root: Path) -> None:
    import shutil

    import pandas as pd

    from assistant.infra.vectors import VectorStore
    from assistant.support.helpbase import HelpBase, build_helpbase
    from assistant.support.intents import train_intents
    from assistant.support.routing import train_routes

    shutil.rmtree(root, ignore_errors=True)  # what a run that died halfway left
    root.mkdir(parents=True)
    orders = root / "orders.csv"
    pd.read_csv(REPO_ROOT / "data" / "online_retail.csv.gz", nrows=60_000).to_csv(
        orders, index=False)
    settings = load_settings(data_dir=root / "data", llm_provider="scripted", orders=orders)
    svc = AssistantService.from_settings(settings, model=ScriptedModel())
    svc.rebuild_segments(orders)
    build_helpbase(HelpBase(VectorStore.from_settings(settings)), per_intent=5)
    train_intents(settings.artifacts_dir)
    train_routes(settings.artifacts_dir)


def copy_shop(staff_shop: Path, dest: Path) -> tuple[Path, Path]:
    """(data dir, orders file) of a private copy of ``staff_shop``."""
    import shutil

    shutil.copytree(staff_shop, dest)
    return dest / "data", dest / "orders.csv"


def staff_copy(staff_shop: Path, dest: Path) -> tuple[Path, Path]:
    """``copy_shop`` with the staff users the callback tests sign in as: alex (agent) and
    olivia (ops)."""
    from tests.apprunner import add_user

    data, orders = copy_shop(staff_shop, dest)
    add_user(data, "alex", "agent")
    add_user(data, "olivia", "ops")
    return data, orders


def shop_service(shop: tuple[Path, Path], model: ScriptedModel | None = None
                 ) -> AssistantService:
    """A service on a shop copy (``staff_copy``) with a scripted model."""
    data, orders = shop
    settings = load_settings(data_dir=data, llm_provider="scripted", orders=orders)
    return AssistantService.from_settings(settings, model=model or ScriptedModel())


def order_of(service: AssistantService, customer: str) -> str:
    """The number of one of ``customer``'s orders in the service's order data: the proof a
    customer gives to link their orders in the chat."""
    orders = service.parts.orders()
    mine = orders.loc[(orders["customer"] == str(customer)) & ~orders["is_return"], "order_id"]
    return str(mine.iloc[0])


def link(service: AssistantService, session_id: str, customer: str):
    """Link a session to a customer with a valid proof (one of their order numbers)."""
    return service.identify(session_id, str(customer), order_of(service, customer))


# Run order: fast tests first, then the slow kinds (stable within each kind, so files keep
# their order). A broken unit fails in the first minutes, not after the browser tests.
_RUN_LAST = {"slow": 1, "e2e": 2, "browser": 3}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        return max((_RUN_LAST.get(m.name, 0) for m in item.iter_markers()), default=0)

    items.sort(key=rank)
