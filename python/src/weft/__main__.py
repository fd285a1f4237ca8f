"""`python -m weft worker MODULE:ATTR`: serve the tools of a `Worker` (or a list of tools,
or a function returning either) defined in a module, until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Any

from .tool import Tool
from .worker import Worker


def _load(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"expected MODULE:ATTR, not {target!r}")
    sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m weft", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("worker", help="serve the tools of MODULE:ATTR")
    w.add_argument("target", help="MODULE:ATTR naming a weft.Worker, a list of tools, or a factory of either")
    w.add_argument("--nats", default=os.environ.get("NATS_URL"), help="NATS URL(s) [env NATS_URL]")
    w.add_argument("--id", default=os.environ.get("WEFT_WORKER_ID"), help="worker id [env WEFT_WORKER_ID]")
    w.add_argument("--ack-wait", type=float, default=float(os.environ.get("WEFT_ACK_WAIT_S", "30")),
                   help="ack wait (s) of consumers this worker creates [env WEFT_ACK_WAIT_S]")
    w.add_argument("--grace", type=float, default=float(os.environ.get("WEFT_GRACE_S", "30")),
                   help="seconds running tools may finish after SIGTERM [env WEFT_GRACE_S]")
    w.add_argument("--log-level", default=os.environ.get("WEFT_LOG_LEVEL", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    obj = _load(args.target)
    if callable(obj) and not isinstance(obj, (Worker, Tool)) and not hasattr(obj, "__weft_tool__"):
        obj = obj()
    if isinstance(obj, Worker):
        worker = obj
        if args.nats and worker.nats_url is None:
            worker.nats_url = args.nats
        if args.id:
            worker.worker_id = args.id
    else:
        tools = obj if isinstance(obj, (list, tuple)) else [obj]
        worker = Worker(args.nats, tools=tools, worker_id=args.id, ack_wait=args.ack_wait, grace=args.grace)
    worker.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
