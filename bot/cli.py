"""The ``shipthread`` command line: serve, sandbox, playbook, db.

Thin on purpose: each subcommand parses its arguments and calls one function of the module that owns
the work. User mistakes end with a one-line message on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bot import __version__, logs
from bot.errors import ShipthreadError


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shipthread",
        description="Slack-first ChatOps deployments: approvals, Jenkins, Kubernetes, QoS guard.",
    )
    parser.add_argument("--version", action="version", version=f"shipthread {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    playbook = sub.add_parser("playbook", help="validate playbooks or print their JSON Schema")
    pb_sub = playbook.add_subparsers(dest="playbook_command", metavar="ACTION")
    validate = pb_sub.add_parser("validate", help="validate playbook files or folders (exit 0 or 1)")
    validate.add_argument(
        "paths", nargs="*", help="files or folders (default: $SHIPTHREAD_PLAYBOOKS or playbooks/)"
    )
    validate.add_argument("--config", help="config file whose approver groups the playbooks must use")
    pb_sub.add_parser("schema", help="print the playbook JSON Schema (for yaml-language-server)")

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION")
    upgrade = db_sub.add_parser("upgrade", help="create or migrate the schema (safe to run twice)")
    upgrade.add_argument("--url", help="database URL (default: $SHIPTHREAD_DATABASE_URL or config)")

    serve = sub.add_parser("serve", help="run the bot: Slack app, engine, /healthz, /readyz, /metrics")
    serve.add_argument("--host", default="0.0.0.0", help="address to listen on (default: all)")  # noqa: S104
    serve.add_argument("--port", type=int, default=3000, help="HTTP port (default: 3000; 0: a free one)")
    serve.add_argument(
        "--socket-mode", action="store_true", help="receive Slack over Socket Mode (needs SLACK_APP_TOKEN)"
    )
    serve.add_argument(
        "--upgrade", action="store_true", help="migrate the database at start instead of refusing an old one"
    )
    serve.add_argument("--drain", type=float, default=20.0, help="seconds SIGTERM waits for acked work")
    serve.add_argument(
        "--poll-interval", type=float, default=None, help="seconds between polls of a deployment (default 2)"
    )

    sandbox = sub.add_parser(
        "sandbox",
        help="play the whole story against local emulators (or rehearse with --interactive)",
        description="Without an ACTION: start everything and play the story, printing each Slack thread.",
    )
    sandbox.add_argument(
        "--interactive", action="store_true", help="a prompt: type slash commands as any user, press buttons"
    )
    sandbox.add_argument(
        "--playbooks", metavar="DIR", help="your own playbooks folder (default: the sandbox's)"
    )
    sandbox.add_argument("--config", metavar="FILE", help="your own config file (default: the sandbox's)")
    sb_sub = sandbox.add_subparsers(dest="sandbox_command", metavar="ACTION")
    emulators = sb_sub.add_parser("emulators", help="start the Slack, Jenkins and Kubernetes emulators")
    emulators.add_argument("--host", default="127.0.0.1")
    emulators.add_argument("--port-base", type=int, default=0, help="first port (0: random free ports)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(parser, args)
    except ShipthreadError as exc:
        # Through the process's redactor: an error may quote a URL or a token it was handed.
        print(f"shipthread: {logs.installed().redact(str(exc))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    # Subcommands import what they need when they run: `shipthread --help` stays fast and a
    # broken optional part (say, the kubernetes client) cannot stop `playbook validate`.
    if args.command == "playbook":
        if args.playbook_command == "validate":
            from bot.playbooks import validate_command

            return validate_command(args.paths, config_path=args.config)
        if args.playbook_command == "schema":
            from bot.playbooks import schema_command

            return schema_command()
    elif args.command == "db" and args.db_command == "upgrade":
        from bot.store.migrate import upgrade_command

        return upgrade_command(args.url)
    elif args.command == "serve":
        from bot.serve import ServeOptions, serve_command

        return serve_command(
            ServeOptions(args.host, args.port, args.socket_mode, args.upgrade, args.drain, args.poll_interval)
        )
    elif args.command == "sandbox" and args.sandbox_command == "emulators":
        from bot.sandbox.runner import emulators_command

        return emulators_command(args.host, args.port_base)
    elif args.command == "sandbox" and args.sandbox_command is None:
        if args.interactive:
            from bot.sandbox.story import interactive_command

            return interactive_command(args.playbooks, args.config)
        from bot.sandbox.story import story_command

        return story_command(args.playbooks, args.config)
    parser.print_help()
    return 0 if args.command is None else 2
