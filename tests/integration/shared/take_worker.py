"""A faust worker whose one agent records each batch it takes (run by test_take_batches.py).

``python -m tests.integration.shared.take_worker BOOTSTRAP TOPIC OUT_FILE``: the agent is the platform's
own (``register_batch_agent``, batches of at most 5, a window of two minutes). Its first batch is slow: it
publishes three more messages and returns only once all three wait in the stream, so they arrived while
a batch was being processed. Each batch's values are appended to OUT_FILE as a JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time

from kafka import KafkaProducer

from shared.observability.metrics import ServiceMetrics
from shared.settings import Settings
from shared.streaming import take
from shared.streaming.batch import BatchOutcome
from shared.streaming.consumer import BatchRunner, register_batch_agent
from shared.streaming.kafka import faust_app, faust_worker

BATCH_MAX = 5
WINDOW_S = 120.0  # far longer than the test waits: a batch taken after a window would fail it

bootstrap, topic, out_file = sys.argv[1:4]
streams: list = []
_take = take.take_batches


def spy(stream, *args):
    streams.append(stream)
    return _take(stream, *args)


take.take_batches = spy


def handle(batch) -> BatchOutcome:
    values = [m.value.decode() for m in batch]
    with open(out_file, "a") as out:
        out.write(json.dumps(values) + "\n")
    if values[0] == "m0":
        producer = KafkaProducer(bootstrap_servers=bootstrap)
        for value in ("late0", "late1", "late2"):
            producer.send(topic, value=value.encode(), key=b"k").get(timeout=30)
        producer.close()
        queue = streams[0].channel.queue  # the stream's own queue: the three are fetched and waiting
        deadline = time.monotonic() + 60
        while queue.qsize() < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    return BatchOutcome(processed=len(batch))


os.makedirs(sys.argv[3] + ".data", exist_ok=True)
settings = Settings(_env_file=None, kafka_bootstrap=bootstrap, data_dir=sys.argv[3] + ".data")
app = faust_app("take-test", settings)
runner = BatchRunner(name="take-test", metrics=ServiceMetrics("take-test"), publish=lambda out: None,
                     delete_outbox=lambda seqs: None)
register_batch_agent(app, name="take-test", topic_names=[topic], runner=runner, batch_size=BATCH_MAX,
                     within_s=WINDOW_S, handle=handle)
faust_worker(app, "warning").execute_from_commandline()
