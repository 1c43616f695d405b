"""The sandbox's own playbook and config: one service, staging and a two-stage production canary.

``shipthread sandbox`` deploys ``checkout`` through these, so they are written for a story that
takes well under two minutes: Jenkins builds of about a second, guard windows of a few seconds
(one tick a second, ranges of ``RANGE``), and approver groups made of the Slack emulator's people
(``tech-leads`` is bob, ``sre`` is carol; alice requests). Without Prometheus the guard is left
out (``guarded=False``): nothing is judged, so nothing can be faked.

The config's endpoints are the emulators' (known only once they run); the Slack, Jenkins and
Prometheus URLs and the database reach ``serve`` through the environment, as in a real deployment.
"""

from __future__ import annotations

from typing import Any, Final

SERVICE: Final = "checkout"
STABLE_VERSION: Final = "1.0.0"
"""What the cluster runs before the story starts."""
CLUSTER: Final = "sandbox"
JOB: Final = "shop/checkout-build"
CHANNELS: Final = {"deploys": "C0DEPLOYS", "deploys-staging": "C0STAGING"}
"""Channel name → id in the Slack emulator (``#deploys`` exists there from the start)."""
NAMESPACES: Final = {"staging": "shop-staging", "production": "shop"}
REPLICAS: Final = 4
RANGE: Final = "4s"
"""The guard's rate() range: with a scrape a second it holds four samples, and each check
settles for that long after a change before it judges the new version."""


def guard() -> dict[str, Any]:
    """Error ratio, p99 latency and ``up``, of the pods in the environment's namespace."""
    where = 'service="{service}",namespace="{namespace}"'
    return {
        "interval": "1s",
        "window": "3s",
        "failure_limit": 0,
        "no_data": "fail",
        "on_breach": "rollback",
        "checks": [
            {
                "name": "5xx ratio",
                "query": f'sum(rate(http_requests_total{{{where},code=~"5.."}}[{RANGE}]))'
                f" / sum(rate(http_requests_total{{{where}}}[{RANGE}]))",
                "max": 0.05,
                "no_data": "ignore",  # a version's first samples: the other checks still judge
            },
            {
                "name": "p99 latency",
                "query": "histogram_quantile(0.99, sum by (le) "
                f"(rate(http_request_duration_seconds_bucket{{{where}}}[{RANGE}])))",
                "max": 1.0,
                "no_data": "ignore",
            },
            {"name": "up", "query": f"min(demo_service_up{{{where}}})", "min": 1},
        ],
    }


def playbook(*, guarded: bool = True) -> dict[str, Any]:
    """The ``checkout`` playbook; ``guarded=False`` leaves every guard out (no Prometheus)."""
    with_guard: dict[str, Any] = {"guard": "http"} if guarded else {}
    book: dict[str, Any] = {
        "service": SERVICE,
        "description": "Checkout API (the sandbox's demo service)",
        "jenkins": {"job": JOB, "parameters": {"VERSION": "{version}", "TARGET_ENV": "{env}"}},
        "kubernetes": {
            "cluster": CLUSTER,
            "namespace": NAMESPACES["production"],
            "deployment": SERVICE,
            "container": "app",
            "image": f"registry.example.com/{SERVICE}:{{version}}",
            "rollout_timeout": "30s",
        },
        "environments": {
            "staging": {
                "channel": "#deploys-staging",
                "namespace": NAMESPACES["staging"],
                "strategy": "rolling",
                **with_guard,
            },
            "production": {
                "channel": "#deploys",
                "requires": [{"succeeded_in": "staging"}],
                "approvals": [{"group": "tech-leads", "count": 1}, {"group": "sre", "count": 1}],
                "strategy": "canary",
                # Without a guard a step holds for a pause instead (nothing judges it).
                "canary": {
                    "steps": [25, 50] if guarded else [{"weight": w, "pause": "2s"} for w in (25, 50)]
                },
                **with_guard,
            },
        },
        "default_env": "staging",
    }
    if guarded:
        book["guards"] = {"http": guard()}
    return book


def config(kubernetes_url: str) -> dict[str, Any]:
    """The bot's settings for the sandbox: one cluster (the emulator), two approver groups."""
    return {
        "clusters": {CLUSTER: {"server": kubernetes_url}},
        "approver_groups": {"tech-leads": ["U0BOB"], "sre": ["U0CAROL"], "oncall": ["U0CAROL"]},
        "break_glass": "oncall",
        "slack": {"default_channel": "#deploys"},
    }
