"""A faust worker (streams.faust_app) with one trivial stage, for the Kafka-path tests: each transcript is
echoed to the agent-assist topic. A call id starting with `big` gets an output larger than any producer may
send (17 MiB), unless ECHO_SMALL is set: the stand-in for an output that can never be delivered.

    python -m tests.streams.kafka_echo_worker     # settings from HOTLINE_... environment variables
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import faust

from contracts import AgentAssist, HotlineTranscript, Message, Topic
from hotline.logging import configure_logging
from hotline.settings import Settings
from hotline.worker import quiet_client_logs
from streams.faust_app import make_faust_app
from streams.stage import Output, Stage

UNSENDABLE_BYTES = 17 * 1024 * 1024


def echo(message: Message) -> Sequence[Output]:
    assert isinstance(message, HotlineTranscript)
    big = message.call_id.startswith("big") and not os.environ.get("ECHO_SMALL")
    classifier = "x" * UNSENDABLE_BYTES if big else "echo"
    return [Output(Topic.AGENT_ASSIST, AgentAssist(call_id=message.call_id, category=None, confidence=0.0,
                                                   top_k=[], classifier=classifier))]


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    quiet_client_logs(settings.log_level)
    app = make_faust_app(settings, [Stage("echo", Topic.TRANSCRIPTS, handle=echo)])
    worker = faust.Worker(app, loglevel=settings.log_level, override_logging=False, quiet=True)
    worker.spinner = None
    worker.execute_from_commandline()  # exits 0 on SIGTERM, 1 after a crash


if __name__ == "__main__":
    main()
