"""``python -m audit verify DIR [--trust DIR] [--json]``: check an audit export
offline, with nothing of dairi's service or database. Exit 0 intact, 1 not (the
first broken sequence and the kind of break are printed), 2 on bad usage."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from audit.export import verify_export


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audit")
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="verify an export directory")
    verify.add_argument("directory", type=Path)
    verify.add_argument(
        "--trust",
        type=Path,
        default=None,
        help="directory of PEM roots (audit.pem there pins the audit key)",
    )
    verify.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = verify_export(args.directory, args.trust)
    print(format_report(report.as_dict(), as_json=args.json))
    return 0 if report.intact else 1


def format_report(report: dict, *, as_json: bool = False) -> str:
    """The verdict as the command lines print it."""
    if as_json:
        return json.dumps(report, ensure_ascii=False)
    lines = []
    first = report["first_break"]
    if report["intact"]:
        lines.append(
            f"intact: {report['events']} events"
            f" ({report['first_sequence']}-{report['last_sequence']}),"
            f" {report['checkpoints_verified']} checkpoints verified,"
            f" last at {report['last_checkpoint']}; head {report['head_hash']}"
        )
    else:
        lines.append(
            f"BROKEN at sequence {first['sequence']}: {first['kind']} ({first['message']})"
        )
        lines += [
            f"  also: {b['sequence']} {b['kind']} ({b['message']})"
            for b in report["breaks"]
            if b != first
        ]
    lines += [f"note: {n}" for n in report["notes"]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
