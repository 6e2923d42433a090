"""The command line of the dead-letter queue tooling: `inspect` and `redrive`."""

from __future__ import annotations

import argparse
import datetime
import sys
import unicodedata
from collections import Counter
from collections.abc import Sequence
from typing import Any

import boto3
import psycopg2
from botocore.exceptions import BotoCoreError, ClientError

from login_ingest.config import without_passwords
from login_ingest.dlq.move import MoveReport, move_messages, move_task
from login_ingest.dlq.peek import PASSES, DeadLetter, Held, peek
from login_ingest.dlq.stored import mark_stored
from login_ingest.parsing import Reason

# The codes a body can be given by reading it again; a message that failed for any other
# reason (the database, a bug) reads as PASSES.
REASONS = sorted([reason.value for reason in Reason
                  if reason not in (Reason.REJECTED_BY_DATABASE, Reason.INTERNAL_ERROR)]
                 + [PASSES])


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group("queues and endpoint (boto3's usual credentials)")
    dlq = where.add_mutually_exclusive_group(required=True)
    dlq.add_argument("--dlq-url", help="the dead-letter queue's URL")
    dlq.add_argument("--dlq-name", help="the dead-letter queue's name")
    where.add_argument("--region", help="AWS region (default: boto3's configuration)")
    where.add_argument("--endpoint-url", help="another SQS endpoint, e.g. a local one")
    where.add_argument("--limit", type=ranged(1, 1_000_000), default=10_000,
                       help="most messages to look at in one run (default %(default)s)")
    where.add_argument("--hide-seconds", type=ranged(1, 43_200), default=300,
                       help="how long messages stay hidden while looked at; they are made "
                            "visible again at the end (default %(default)s)")
    where.add_argument("--database-url", metavar="URL",
                       help="libpq URI of the database: look up which messages are stored "
                            "already (a redrive never moves those)")

    parser = argparse.ArgumentParser(
        prog="python -m login_ingest.dlq",
        description="Look into the dead-letter queue and move messages back to their queue.")
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser(
        "inspect", parents=[common],
        help="list the messages with their reason codes; consumes nothing",
        description="List every message of the dead-letter queue with the reason code the "
                    "function would give it now. Bodies hold personal data: they are shown "
                    "only with --show-body.")
    inspect.add_argument("--show-body", action="store_true",
                         help="print each raw body too (personal data: ip, device_id)")

    redrive = commands.add_parser(
        "redrive", parents=[common], help="move messages back to the source queue",
        description="Move messages back to the source queue: all of them (by SQS's own "
                    "message-move task where the endpoint has one), or those of some reason "
                    "codes or message ids.")
    target = redrive.add_mutually_exclusive_group()
    target.add_argument("--queue-url", help="the source queue (default: the one queue whose "
                                           "redrive policy names this dead-letter queue)")
    target.add_argument("--queue-name", help="the source queue, by name")
    which = redrive.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every message")
    which.add_argument("--reason", action="append", choices=REASONS, metavar="CODE",
                       help=f"messages of this reason code (repeatable): {', '.join(REASONS)}")
    which.add_argument("--id", action="append", metavar="MESSAGE_ID",
                       help="the message with this id (repeatable)")
    redrive.add_argument("--dry-run", action="store_true",
                         help="print what would move, and move nothing")
    redrive.add_argument("--by-message", action="store_true",
                         help="with --all, move message by message even where SQS's "
                              "message-move task is available: each copy then keeps its "
                              "first sending's time, which dates a login without create_date")
    args = parser.parse_args(argv)
    if args.command == "redrive" and args.by_message and not args.all:
        redrive.error("--by-message goes with --all (--reason and --id always move message "
                      "by message)")
    return args


def printable(text: str) -> str:
    """`text` with control and format characters (escape sequences, bidi overrides,
    zero-width marks) shown as escapes: a body must not repaint the operator's terminal."""
    return "".join(
        char.encode("unicode_escape").decode("ascii")
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp") else char
        for char in text)


def ranged(low: int, high: int) -> Any:
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}")
        return value
    return parse


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        sqs = boto3.client("sqs", region_name=args.region, endpoint_url=args.endpoint_url)
        dlq_url = args.dlq_url or sqs.get_queue_url(QueueName=args.dlq_name)["QueueUrl"]
        in_flight = check_dead_letter_queue(sqs, dlq_url)
        if in_flight:
            print(f"note: {in_flight} messages are in flight (held by another reader, or by "
                  "an inspect stopped less than --hide-seconds ago): they are not shown",
                  file=sys.stderr)
        if args.command == "inspect":
            return inspect(sqs, dlq_url, args)
        return redrive(sqs, dlq_url, args)
    except (ClientError, BotoCoreError, LookupError, RuntimeError, ValueError,
            psycopg2.Error) as error:
        # One line: the first of the message (an emulator may answer with a whole HTML page).
        first_line = (str(error).strip().splitlines() or [""])[0][:300]
        # Escaped too: an error may quote a message attribute's name or a queue's answer.
        message = printable(without_passwords(first_line))
        print(f"error: {type(error).__name__}: {message}".rstrip(),
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the messages held were made visible again (a receive cut short "
              "may leave up to ten hidden for --hide-seconds)", file=sys.stderr)
        return 130


def check_dead_letter_queue(sqs: Any, dlq_url: str) -> int:
    """How many of the queue's messages are in flight; raises LookupError if the queue has a
    redrive policy, that is, if it is a source queue rather than a dead-letter queue:
    receiving from one counts towards its maxReceiveCount and hides live messages."""
    attributes = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=[
        "RedrivePolicy", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    if attributes.get("RedrivePolicy"):
        raise LookupError(f"{dlq_url} has a redrive policy: it is a source queue, not a "
                          "dead-letter queue, and looking at it would move its messages on")
    return int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0))


def inspect(sqs: Any, dlq_url: str, args: argparse.Namespace) -> int:
    with peek(sqs, dlq_url, limit=args.limit, hide_seconds=args.hide_seconds) as held:
        if args.database_url:
            mark_stored(held.messages, args.database_url)
        print_table(held.messages)
        if args.show_body:
            print("\nbodies (personal data: do not paste them anywhere):")
            for message in held.messages:
                print(f"{message.message_id}  {printable(message.body)}")
        print_summary(held)
    return 0


def redrive(sqs: Any, dlq_url: str, args: argparse.Namespace) -> int:
    source_url = source_queue(sqs, dlq_url, args)
    # The task moves everything as it is: not with a stored-message check, nor --by-message.
    if args.all and not (args.dry_run or args.by_message or args.database_url):
        task_bar = progress_bar(None, "moving (SQS message-move task)")
        try:
            report = move_task(sqs, queue_arn(sqs, dlq_url), queue_arn(sqs, source_url),
                               task_bar.update)
        finally:
            task_bar.close()
        if report is not None:
            print(f"moved {report.moved} messages to {source_url}")
            return 0
        print("this endpoint has no message-move task: moving message by message",
              file=sys.stderr)
    with peek(sqs, dlq_url, limit=args.limit, hide_seconds=args.hide_seconds) as held:
        chosen = [m for m in held.messages if args.all
                  or (args.reason and m.reason in args.reason)
                  or (args.id and m.message_id in args.id)]
        for message_id in sorted(set(args.id or ()) - {m.message_id for m in chosen}):
            print(f"not in the dead-letter queue: {message_id}", file=sys.stderr)
        if args.database_url:
            mark_stored(chosen, args.database_url)
            for message in (m for m in chosen if m.stored):
                print(f"already stored, not moved: {message.message_id}", file=sys.stderr)
            chosen = [m for m in chosen if not m.stored]
        elif any(m.reason == PASSES for m in chosen):
            print("some messages pass validation: they may be stored already "
                  "(see README, Redrive and idempotency); --database-url checks",
                  file=sys.stderr)
        if args.dry_run:
            print_table(chosen)
            print(f"dry run: would move {len(chosen)} of {len(held.messages)} messages "
                  f"to {source_url}; nothing moved")
            if args.all and not (args.by_message or args.database_url):
                print("without --dry-run, --all starts SQS's message-move task where the "
                      "endpoint has one: copies are then dated by the move (see --by-message)")
            return 1 if set(args.id or ()) - {m.message_id for m in held.messages} else 0
        bar = progress_bar(len(chosen), "moving")
        try:
            report = move_messages(sqs, held, chosen, dlq_url, source_url, bar.update)
        finally:
            bar.close()
        print_moves(report, len(chosen), len(held.messages), source_url, held)
    if isinstance(report.stopped_by, KeyboardInterrupt):
        return 130
    missing = set(args.id or ()) - {m.message_id for m in held.messages}
    failed = (report.not_sent or report.copied_not_deleted or report.stopped_by or missing
              or held.hiding_ran_out)
    return 1 if failed else 0


def source_queue(sqs: Any, dlq_url: str, args: argparse.Namespace) -> str:
    """The queue to move messages to: the one named, which must send its failures to this
    dead-letter queue, or else the one queue that does."""
    sources = sqs.list_dead_letter_source_queues(QueueUrl=dlq_url).get("queueUrls", [])
    if args.queue_url or args.queue_name:
        named = str(args.queue_url or sqs.get_queue_url(QueueName=args.queue_name)["QueueUrl"])
        if queue_arn(sqs, named) not in {queue_arn(sqs, url) for url in sources}:
            raise LookupError(f"{named} does not send its failures to this dead-letter "
                              "queue: a redrive goes back to a source queue")
        if len(sources) > 1:
            print(f"note: {len(sources)} queues send to this dead-letter queue; every message "
                  f"chosen goes to {named}, whichever it came from (choose with --id or "
                  "--reason)", file=sys.stderr)
        return named
    if len(sources) != 1:
        raise LookupError(f"{len(sources)} queues send to this dead-letter queue: "
                          "name the source with --queue-url or --queue-name")
    return str(sources[0])


def queue_arn(sqs: Any, url: str) -> str:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


def progress_bar(total: int | None, description: str) -> Any:
    # Imported here: tqdm is a development dependency, and only this command needs it.
    from tqdm import tqdm

    # Drawn on stderr, and only on a terminal: piped output stays a clean table.
    return tqdm(total=total, desc=description, unit="msg", file=sys.stderr, disable=None)


def _when(moment: datetime.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def print_table(messages: Sequence[DeadLetter]) -> None:
    """One line per message: never its body, ip or device id."""
    looked_up = any(m.stored is not None for m in messages)
    header: tuple[str, ...] = ("message id", "receives", "sent (UTC)", "first received (UTC)",
                               "reason", *(["stored"] if looked_up else []))
    rows = [(m.message_id, str(m.receive_count), _when(m.sent_at), _when(m.first_received_at),
             m.reason, *([("yes" if m.stored else "no")] if looked_up else []))
            for m in messages]
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(header)]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())


def print_summary(held: Held) -> None:
    counts = Counter(message.reason for message in held.messages)
    by_reason = ", ".join(f"{reason} {n}" for reason, n in sorted(counts.items()))
    noun = "message" if len(held.messages) == 1 else "messages"
    print(f"\n{len(held.messages)} {noun}" + (f": {by_reason}" if by_reason else ""))
    if held.limit_reached:
        print("limit reached: more messages may wait; raise --limit to see them")
    if held.hiding_ran_out:
        print(HIDING_RAN_OUT)


HIDING_RAN_OUT = ("the hiding ran out during the look (messages came back): some may not have "
                  "been seen; raise --hide-seconds")


def print_moves(report: MoveReport, chosen: int, seen: int, source_url: str,
                held: Held) -> None:
    print(f"moved {report.moved} of {chosen} chosen messages ({seen} looked at) "
          f"to {source_url}")
    for message_id, code in report.not_sent.items():
        print(f"not sent ({code}), still in the dead-letter queue: {message_id}",
              file=sys.stderr)
    for message_id in report.copied_not_deleted:
        print(f"sent but not deleted, now in both queues: {message_id}", file=sys.stderr)
    if report.stopped_by is not None:
        print(f"stopped by {type(report.stopped_by).__name__}; the messages not moved are "
              "still in the dead-letter queue", file=sys.stderr)
    for message_id in report.undated:
        print(f"copied without its first sending's time (it had SQS's ten message attributes "
              f"already), so dated by this redrive: {message_id}", file=sys.stderr)
    for message_id in report.in_doubt:
        print(f"in hand when stopped, may now be in both queues: {message_id}",
              file=sys.stderr)
    if held.limit_reached:
        print("limit reached: more messages may wait; run again", file=sys.stderr)
    if held.hiding_ran_out:
        print(HIDING_RAN_OUT, file=sys.stderr)
