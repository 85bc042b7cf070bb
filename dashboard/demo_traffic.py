"""Send realistic traffic to a running service, so a new dashboard has something to show.

``python3 -m dashboard.demo_traffic --requests 600 --shift 0.3`` posts
synthetic employees drawn from the champion card's training distributions
(aggregates, never rows) to ``/predict`` and ``/predict_batch`` over every
valid model; ``--employee-ids 1-1470`` sends some requests as
``{"employee_id": N}`` for imported employees; ``--shift`` moves some inputs of
that share of the requests (older, lower paid, overtime, longer commute) so
the Drift page has a drift to find.

``--outcomes 0.6`` also gives the Evaluation, Comparison and Fairness pages
outcomes to judge: each single call of inline fields is tagged with a new
employee id (from ``--tag-ids-from``, default 900001, above the extracts'
ids), and after the traffic, for that share of the tagged employees that
were answered (drawn with the seed), an outcome is posted to ``/outcomes``,
known tomorrow (so every such prediction is a **forecast**). The stated rule:
the outcome is the label the service answered, flipped for every fifth
outcome posted, so the model that served is right on exactly 80 % of them.
Employees scored by id keep the outcome of the extracts (in-sample, from
``import-dataset``): the demo records none for them.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from attrition.schema import FEATURES, Employee
from attrition.synthetic import synthetic_employee
from settings import settings

SHIFTED_INPUTS = ("age", "revenu_mensuel", "heure_supplementaires", "distance_domicile_travail")
"""The inputs ``--shift`` moves."""
CAREER = ("age", "annee_experience_totale", "annees_dans_l_entreprise", "annees_dans_le_poste_actuel",
          "annees_depuis_la_derniere_promotion", "annes_sous_responsable_actuel")
"""The inputs of a career, ordered in every real row (post, promotion, manager <= company <= experience <= age - 14)."""


def value_at_quantile(reference: Mapping[str, Any], u: float) -> int:
    """The integer at quantile ``u`` of a numeric reference histogram (uniform within a bin)."""
    edges, shares = reference["histogram"]["edges"], reference["histogram"]["shares"]
    total = sum(shares)
    cumulative = 0.0
    for index, share in enumerate(shares):
        if share > 0 and u * total <= cumulative + share:
            low = max(math.ceil(edges[index]), int(reference["min"]))
            high = min(math.ceil(edges[index + 1]) - 1, int(reference["max"]))
            position = (u * total - cumulative) / share
            return min(max(low + int(position * (high - low + 1)), low), high)
        cumulative += share
    return int(reference["max"])


def reference_employee(rng: random.Random, references: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """One schema-valid synthetic employee drawn from a card's reference distributions.

    Each input follows its training distribution (categories by share,
    numbers by the histogram). The career inputs share one quantile: in
    training, years in post <= in company <= experience <= age - 14 on every
    row, so their quantiles keep that order and the drawn career can exist.
    """
    if any(spec.name not in references for spec in FEATURES):
        return synthetic_employee(rng)
    row: dict[str, Any] = {}
    career = rng.random()
    for spec in FEATURES:
        reference = references[spec.name]
        if spec.categories is not None:
            categories = [c for c in reference["shares"] if c in spec.categories]
            row[spec.name] = rng.choices(categories, weights=[reference["shares"][c] for c in categories])[0]
        else:
            row[spec.name] = value_at_quantile(reference, career if spec.name in CAREER else rng.random())
    # Rounding to whole years can still break the order by one: restore it.
    row["annee_experience_totale"] = min(row["annee_experience_totale"], row["age"] - 14)
    row["annees_dans_l_entreprise"] = min(row["annees_dans_l_entreprise"], row["annee_experience_totale"])
    for name in CAREER[3:]:
        row[name] = min(row[name], row["annees_dans_l_entreprise"])
    return Employee.model_validate(row).model_dump()


def shifted(employee: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    """The employee with ``SHIFTED_INPUTS`` moved: older, paid less, working overtime, living further away."""
    row = dict(employee)
    row["age"] = min(row["age"] + rng.randint(8, 15), 65)
    row["revenu_mensuel"] = max(int(row["revenu_mensuel"] * 0.6), 800)
    row["heure_supplementaires"] = "Oui"
    row["distance_domicile_travail"] = min(row["distance_domicile_travail"] + rng.randint(10, 40), 200)
    return Employee.model_validate(row).model_dump()


@dataclass(frozen=True)
class Call:
    """One HTTP call of the demo: its path and JSON body."""

    path: str
    body: dict[str, Any]

    @property
    def rows(self) -> int:
        """Rows the call asks to predict."""
        return len(self.body["employees"]) if "employees" in self.body else 1


@dataclass
class TrafficPlan:
    """How the demo traffic is drawn."""

    models: Sequence[str]
    references: Mapping[str, Mapping[str, Any]]
    batch_share: float = 0.15
    max_batch: int = 20
    shift: float = 0.0
    employee_ids: tuple[int, int] | None = None
    stored_share: float = 0.2
    seed: int = 0
    tag_ids_from: int | None = None
    """First employee id given to single calls of inline fields (None: they carry no id)."""
    rng: random.Random = field(init=False)
    next_tag: int | None = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.next_tag = self.tag_ids_from

    def employee(self) -> dict[str, Any]:
        """A synthetic employee, shifted with probability ``shift``."""
        row = reference_employee(self.rng, self.references)
        return shifted(row, self.rng) if self.rng.random() < self.shift else row

    def call(self) -> Call:
        """The next call: a batch, a stored employee, or one synthetic employee."""
        model = self.rng.choice(list(self.models))
        if self.rng.random() < self.batch_share:
            size = self.rng.randint(2, self.max_batch)
            return Call("/predict_batch", {"employees": [self.employee() for _ in range(size)], "model": model})
        if self.employee_ids is not None and self.rng.random() < self.stored_share:
            return Call("/predict", {"employee_id": self.rng.randint(*self.employee_ids), "model": model})
        if self.next_tag is None:
            return Call("/predict", {"employee": self.employee(), "model": model})
        self.next_tag += 1
        return Call("/predict", {"employee": self.employee(), "employee_id": self.next_tag - 1, "model": model})

    def calls(self, count: int) -> Iterator[Call]:
        """``count`` calls."""
        for _ in range(count):
            yield self.call()


FLIP_EVERY = 5
"""Every fifth outcome the demo posts is the opposite of the answer: the served model is right on 80 % of them."""


def demo_outcomes(answered: Sequence[tuple[int, int]], share: float, seed: int, known_at: str) -> list[dict[str, Any]]:
    """The outcomes the demo posts for ``answered`` (tagged employee id, predicted 0/1), by the stated rule.

    A ``share`` of the employees, drawn with ``seed``; the outcome is the
    prediction, flipped for every :data:`FLIP_EVERY`-th one.
    """
    rng = random.Random(seed + 1)
    chosen = [pair for pair in sorted(answered) if rng.random() < share]
    return [{"employee_id": employee_id, "left": bool(predicted) != (index % FLIP_EVERY == FLIP_EVERY - 1),
             "known_at": known_at} for index, (employee_id, predicted) in enumerate(chosen)]


def post_outcomes(client: httpx.Client, outcomes: list[dict[str, Any]], max_items: int) -> dict[int, int]:
    """Post ``outcomes`` to ``/outcomes`` in chunks of ``max_items``; the statuses answered, counted."""
    statuses: dict[int, int] = {}
    for start in range(0, len(outcomes), max_items):
        status = client.post("/outcomes", json={"outcomes": outcomes[start:start + max_items]}).status_code
        statuses[status] = statuses.get(status, 0) + 1
    return statuses


def champion_references(models_dir: Path) -> dict[str, Any]:
    """The reference distributions of the champion's card (or of the first card), empty without cards."""
    aliases_path = models_dir / "aliases.json"
    tag = json.loads(aliases_path.read_text(encoding="utf-8")).get("champion") if aliases_path.is_file() else None
    cards = sorted(models_dir.glob("*/*/card.json"))
    if tag:
        name, _, version = tag.partition(":")
        cards = [models_dir / name / version / "card.json"] + cards
    for path in cards:
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))["reference_distributions"]
    return {}


def valid_models(client: httpx.Client) -> list[str]:
    """``name:version`` of every model the service reports as valid."""
    answer = client.get("/models")
    answer.raise_for_status()
    listing = answer.json()
    models = listing["models"] if isinstance(listing, dict) else listing
    return [f"{m['name']}:{m['version']}" for m in models if m.get("valid", True)]


def progress_bar() -> Progress:
    """The progress bar of the calls on stderr (rich draws it, or prints plain lines off a terminal)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("requests, {task.fields[failures]} failed"), TimeElapsedColumn(),
                    console=Console(stderr=True))


def parse_range(text: str) -> tuple[int, int]:
    """``"1-1470"`` as ``(1, 1470)``."""
    low, sep, high = text.partition("-")
    if not sep or int(low) > int(high):
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH, got {text!r}")
    return int(low), int(high)


def main(argv: Sequence[str] | None = None) -> int:
    """Send the demo traffic; returns 0 when every call was answered 200."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000", help="base URL of the running service")
    parser.add_argument("--requests", type=int, default=600, help="HTTP calls to send")
    parser.add_argument("--models", default="", help="comma-separated models (default: every valid one)")
    parser.add_argument("--batch-share", type=float, default=0.15, help="share of calls that are batches")
    parser.add_argument("--max-batch", type=int, default=20, help="rows of a batch at most")
    parser.add_argument("--shift", type=float, default=0.0, nargs="?", const=0.3,
                        help="share of employees whose inputs are shifted (default when given: 0.3)")
    parser.add_argument("--employee-ids", type=parse_range, default=None,
                        help="LOW-HIGH: also send {'employee_id': N} for employees imported into the database")
    parser.add_argument("--outcomes", type=float, default=0.0, metavar="SHARE",
                        help="tag single inline calls with new employee ids and post outcomes (known tomorrow) for "
                             "this share of them: the answered label, flipped for every fifth (80 %% right)")
    parser.add_argument("--tag-ids-from", type=int, default=900_001,
                        help="first employee id given to tagged inline calls (with --outcomes)")
    parser.add_argument("--api-key", default=None, help="sent as Authorization: Bearer (scopes predict, and "
                                                        "outcomes with --outcomes)")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    with httpx.Client(base_url=args.url, headers=headers, timeout=30) as client:
        models = [m for m in args.models.split(",") if m] or valid_models(client)
        if not models:
            print("The service reports no valid model.", file=sys.stderr)
            return 1
        plan = TrafficPlan(models, champion_references(Path(settings.models_dir)), args.batch_share,
                           args.max_batch, args.shift, args.employee_ids, seed=args.seed,
                           tag_ids_from=args.tag_ids_from if args.outcomes > 0 else None)
        calls = list(plan.calls(args.requests))
        statuses: dict[int, int] = {}
        answered: list[tuple[int, int]] = []
        started = time.monotonic()

        def send(call: Call) -> tuple[int, int | None]:
            answer = client.post(call.path, json=call.body)
            tagged = answer.status_code == 200 and "employee" in call.body and "employee_id" in call.body
            return answer.status_code, answer.json()["prediction"] if tagged else None

        with ThreadPoolExecutor(max_workers=max(args.concurrency, 1)) as pool, progress_bar() as bar:
            task = bar.add_task("demo traffic", total=len(calls), failures=0)
            for done, (call, (status, predicted)) in enumerate(zip(calls, pool.map(send, calls)), start=1):
                statuses[status] = statuses.get(status, 0) + 1
                if predicted is not None:
                    answered.append((call.body["employee_id"], predicted))
                bar.update(task, advance=1, failures=done - statuses.get(200, 0))
        rows = sum(c.rows for c in calls)
        print(f"{len(calls)} requests ({rows} rows) to {', '.join(models)} in {time.monotonic() - started:.1f} s; "
              f"answers: {dict(sorted(statuses.items()))}")
        posted: dict[int, int] = {}
        if args.outcomes > 0:
            tomorrow = (datetime.now(timezone.utc) + timedelta(days=1)).date().isoformat()
            outcomes = demo_outcomes(answered, args.outcomes, args.seed, tomorrow)
            posted = post_outcomes(client, outcomes, settings.max_batch_rows)
            print(f"{len(outcomes)} outcomes (known {tomorrow}) of {len(answered)} tagged employees posted to "
                  f"/outcomes: answers {dict(sorted(posted.items()))}; the served model is right on "
                  f"{100 * (1 - 1 / FLIP_EVERY):.0f} % of them by construction")
    return 0 if statuses.get(200, 0) == len(calls) and set(posted) <= {200} else 1


if __name__ == "__main__":
    raise SystemExit(main())
