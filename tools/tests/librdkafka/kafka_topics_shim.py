"""kafka-topics.sh for librdkafka's tests, run as `weir topics`.

Kafka's Java CLI cannot be installed here (its distribution is not on the
package registries CI reaches), and three of librdkafka's tests create,
alter or delete a topic through it. This takes the arguments those tests
pass and runs the same operation with `weir topics` against the same
broker, so the tests go on to check what they are about (timestamps,
compaction, subscription updates). Any other use is refused.
Usage: kafka_topics_shim.py WEIR [kafka-topics.sh arguments]
"""
import argparse
import subprocess
import sys

weir, args = sys.argv[1], sys.argv[2:]
parser = argparse.ArgumentParser(prog="kafka-topics.sh (weir shim)")
parser.add_argument("--bootstrap-server", required=True)
action = parser.add_mutually_exclusive_group(required=True)
action.add_argument("--create", action="store_true")
action.add_argument("--alter", action="store_true")
action.add_argument("--delete", action="store_true")
parser.add_argument("--topic", required=True)
parser.add_argument("--partitions", type=int)
parser.add_argument("--replication-factor", type=int)
parser.add_argument("--config", action="append", default=[])
opts = parser.parse_args(args)

if opts.replication_factor not in (None, 1):
    sys.exit(f"kafka-topics.sh (weir shim): replication factor {opts.replication_factor} needs several brokers")
command = [weir, "topics"]
if opts.create:
    command += ["create", opts.topic]
    if opts.partitions is not None:
        command += ["--partitions", str(opts.partitions)]
    for config in opts.config:
        command += ["--config", config]
elif opts.alter:
    if opts.partitions is None or opts.config:
        sys.exit("kafka-topics.sh (weir shim): --alter takes --partitions only")
    command += ["alter", opts.topic, "--partitions", str(opts.partitions)]
else:
    command += ["delete", opts.topic]
command += ["--bootstrap", opts.bootstrap_server]
print("kafka-topics.sh (weir shim):", " ".join(command), flush=True)
sys.exit(subprocess.run(command).returncode)
