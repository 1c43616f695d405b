"""Benchmark: N concurrent deployments' threads in one channel against Slack's limits.

For 10 and for 100 concurrent deployments (each a whole canary-step lifecycle: open, build,
rollout, three guard ticks, verdict, one notice every ``--gap`` seconds, 15 by default;
``bench.slack_traffic``) told to the real notifier and rendered by the real planner
(``bot.slack.thread.plan``), against the Slack emulator with
Slack's rate limits, it prints: 429s received (target 0), final states delivered (target 100 %),
and the lag from a phase change to the parent card showing it (p50, p95), next to the floor that
Slack's own allowance sets (``chat.update`` Tier 3, 50/min; and one post per second per channel:
cards waiting ÷ allowance). Targets: at 10, p95 ≤ 2 s; at 100, within 1.5× of the floor.

``--scale F`` runs the emulator's limits and the notifier's pacing F times faster (the same factor
for both, so the shape is Slack's and the times are divided by F); figures are printed in Slack
seconds (measured × F). Results go to ``bench/results/slack_budget.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.slack_traffic import FINAL_CARD, run_deployments
from bot.adapters.retrying import RetryPolicy
from bot.adapters.slack_notifier import NotifierOptions, SlackNotifier
from bot.adapters.slack_pacing import Pacing
from bot.sandbox.server import ServerThread
from bot.sandbox.slack import DEFAULT_PER_MINUTE, RateLimits, SlackEmulator, emulator_of
from bot.slack.outgoing import CARD
from bot.slack.thread import plan
from bot.store.db import create_engine
from bot.store.migrate import upgrade
from bot.store.threads import OutMessage, ThreadStore

TOKEN = "xoxb-sandbox"  # the emulator's well-known token


def scaled_limits(scale: float) -> RateLimits:
    """Slack's limits, ``scale`` times faster."""
    return RateLimits(
        per_minute={tier: int(n * scale) for tier, n in DEFAULT_PER_MINUTE.items()},
        post_per_second=1.0 * scale,
    )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(count: int, scale: float, gap: float, folder: Path) -> dict[str, Any]:
    url = f"sqlite+aiosqlite:///{folder / f'bench{count}.db'}"
    await upgrade(url)
    database = create_engine(url)
    delivered: dict[str, list[tuple[int, float]]] = {}

    def on_delivered(message: OutMessage, revision: int, at: float) -> None:
        if message.key == CARD:
            delivered.setdefault(message.thread_id, []).append((revision, at))

    with ServerThread(SlackEmulator(rate_limits=scaled_limits(scale)).app, name="slack") as slack:
        chat = SlackNotifier(
            ThreadStore(database),
            plan,
            token=TOKEN,
            base_url=f"{slack.url}/api/",
            channel_for=lambda dep: "#deploys",
            options=NotifierOptions(
                pacing=Pacing().scaled(scale),
                timeout_s=5.0,
                retry=RetryPolicy(attempts=3, total_s=10.0),
                drain_s=600.0,
                max_in_flight=8,
            ),
            on_delivered=on_delivered,
        )
        await chat.start()
        started = time.monotonic()
        told = await run_deployments(chat, count, gap_s=gap / scale, spread_s=gap / scale)
        drained = await chat.drain(3600)
        elapsed = time.monotonic() - started
        await chat.close()
        calls = emulator_of(slack.app).calls()
        history = emulator_of(slack.app).messages("C0DEPLOYS")
    await database.dispose()
    cards = [m for m in history if m.get("thread_ts") in (None, m["ts"])]
    final_ok = sum(1 for m in cards if m["text"] == FINAL_CARD)
    lags: list[float] = []
    for did, changes in told.items():
        shown = delivered.get(did, [])
        for revision, at in changes:
            when = next((t for r, t in shown if r >= revision and t >= at), None)
            if when is not None:
                lags.append((when - at) * scale)
    # The floor Slack's allowance sets when every card waits for an edit at once: cards waiting ÷
    # chat.update's Tier 3 (50 a minute per workspace).
    floor = count / (50 / 60)
    return {
        "deployments": count,
        "scale": scale,
        "gap_s": gap,
        "drained": drained,
        "elapsed_slack_s": round(elapsed * scale, 1),
        "http_429": sum(1 for c in calls if c["status"] == 429),
        "final_states_delivered": f"{100 * final_ok / count:.0f} %",
        "lag_p50_s": round(percentile(lags, 0.5), 2),
        "lag_p95_s": round(percentile(lags, 0.95), 2),
        "lag_max_s": round(max(lags, default=float("nan")), 2),
        "floor_s": round(floor, 1),
        "posts": sum(1 for c in calls if c["method"] == "chat.postMessage" and c["ok"]),
        "updates": sum(1 for c in calls if c["method"] == "chat.update" and c["ok"]),
    }


async def main(counts: list[int], scale: float, gap: float, out: Path) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            result = await measure(count, scale, gap, Path(tmp))
            results.append(result)
            print(json.dumps(result), flush=True)
    out.write_text(json.dumps(results, indent=2) + "\n")  # noqa: ASYNC240 -- once, at the end
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="10,100")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument(
        "--gap", type=float, default=15.0, help="Slack seconds between a deployment's notices"
    )
    args = parser.parse_args()
    results_dir = Path(__file__).resolve().parent / "results"
    results_dir.mkdir(exist_ok=True)
    asyncio.run(
        main(
            [int(c) for c in args.counts.split(",")], args.scale, args.gap, results_dir / "slack_budget.json"
        )
    )
