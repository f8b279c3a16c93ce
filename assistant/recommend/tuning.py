"""Per-shop tuning of the served hybrid: the weights of each mode and the ALS size chosen on
the shop's own data, saved as a versioned bundle (``infra/artifacts.py``, kind
``recommender``) whose manifest records the data's SHA-256, the validation metric and the
date. The app serves a tuned bundle only for the file it was tuned on (same hash);
otherwise it serves the built-in weights (``algorithms.DEFAULT_WEIGHTS``, tuned on Online
Retail) and says why (``served_weights``).

The validation split is the evaluation's (``evaluation.tune_hybrid``): with times, the last
quarter of the interactions by date; without, a seeded random quarter of each user's items.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from assistant.core.errors import AssistantError, InputError
from assistant.infra.artifacts import load_bundle, save_bundle
from assistant.orders.tables import file_sha256
from assistant.recommend.algorithms import DEFAULT_WEIGHTS, default_components
from assistant.recommend.evaluation import Progress, make_split, tune_hybrid
from assistant.recommend.interactions import InteractionData

KIND = "recommender"


def tune(data: InteractionData, *, k: int = 10, seed: int = 0,
         embedder: Any = None, cache_dir: Path | None = None,
         progress: Progress | None = None) -> dict[str, Any]:
    """Weights and parameters for ``data`` (see the module docstring). Returns the manifest
    ``save`` writes: weights, params, validation NDCG@k per mode, split, data summary."""
    if k < 1:
        raise InputError(f"--k {k} must be at least 1.", "Pass e.g. --k 10.")
    kind = "chronological" if data.has_time else "random-per-user"
    try:
        split = make_split(data.events, kind, seed=seed)
    except InputError:
        split = None
    if split is None or split.train.empty or split.test.empty:
        raise InputError("The interactions cannot be split into a training and a validation "
                         "part (too few, or all on one day).",
                         "Tune on a file with several weeks of orders, or keep the built-in "
                         "weights.")
    weights, scores, params = tune_hybrid(data, split, k, (False, True), seed, embedder,
                                          cache_dir, progress or (lambda stage, done: None))
    ndcg = {m: v for m, v in scores.items() if isinstance(v, float)}
    if not ndcg:
        raise InputError("No user has interactions on both sides of the validation split, so "
                         "nothing could be tuned.",
                         "Tune on a file where customers come back (several orders each).")
    return {"data": {**data.summary(), "sha256": data.sha256}, "metric": f"ndcg@{k}", "k": k,
            "seed": seed, "split": {"kind": split.kind, **split.detail},
            "validation": ndcg, "weights": weights, "params": params,
            "als_factors": scores.get("als_factors", {})}


def save(root: Path, manifest: dict[str, Any]) -> Path:
    """Write the tuned weights as a new ``recommender`` bundle (the pointer moves last)."""
    return save_bundle(root, KIND, models={}, tables={}, manifest=manifest)


def load(root: Path) -> dict[str, Any] | None:
    """The current tuned manifest (with its bundle ``path``), or None when none was saved."""
    bundle = load_bundle(root, KIND, models=False)
    return None if bundle is None else {**bundle.manifest, "path": str(bundle.path)}


def served_weights(root: Path, orders_path: Path, sha256: str | None = None) -> dict[str, Any]:
    """What the app serves for ``orders_path``: the tuned bundle when it was tuned on this
    very file, else the built-in weights, with the reason (``source``, ``note``).
    ``sha256``: the file's, when the caller has it already (else it is read here)."""
    builtin = {"source": "built-in", "weights": DEFAULT_WEIGHTS, "params": {},
               "note": "tuned on the shipped Online Retail data (recommend tune makes "
                       "weights for your own file)"}
    try:
        tuned = load(root)
    except AssistantError as err:
        return {**builtin, "note": f"the tuned weights could not be read: {err.message}"}
    if tuned is None:
        return builtin
    try:
        current = sha256 or file_sha256(Path(orders_path))
    except OSError as exc:
        return {**builtin, "note": f"the orders file cannot be read ({exc.strerror})"}
    if tuned["data"].get("sha256") != current:
        return {**builtin, "tuned": tuned,
                "note": f"the tuned weights ({tuned['created_at']}) are for another file "
                        f"({tuned['data'].get('source')}, SHA-256 "
                        f"{str(tuned['data'].get('sha256'))[:12]}…); run recommend tune "
                        "on the file served now"}
    problem = _unusable(tuned)
    if problem:
        return {**builtin, "tuned": tuned,
                "note": f"the tuned weights ({tuned['created_at']}) do not fit this version "
                        f"({problem}); run recommend tune again"}
    return {"source": "tuned", "weights": tuned["weights"], "params": tuned["params"],
            "tuned": tuned, "note": f"tuned {tuned['created_at']} on {tuned['data']['source']}"}


def _unusable(tuned: dict[str, Any]) -> str | None:
    """Why a saved manifest cannot be served (unknown parameters, non-numeric weights), or
    None: an older release's bundle must never stop the app from starting."""
    try:
        default_components(params=tuned.get("params") or {})
    except (TypeError, ValueError, AttributeError) as exc:
        return f"parameters: {exc}"
    weights = tuned.get("weights")
    if not isinstance(weights, dict) or not all(
            isinstance(w, dict) and all(isinstance(v, int | float) for v in w.values())
            for w in weights.values()):
        return "weights are not numbers per mode and component"
    return None
