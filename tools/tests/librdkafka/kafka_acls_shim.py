"""kafka-acls.sh for librdkafka's tests, run as `weir acls`.

Three of librdkafka's tests (0109, 0115, 0119) add and remove ACLs through
Kafka's Java CLI, which cannot be installed here (see kafka_topics_shim.py).
This takes the arguments those tests pass and runs the same change with
`weir acls add|remove` against the same broker. Any other use is refused.
Usage: kafka_acls_shim.py WEIR [kafka-acls.sh arguments]
"""
import argparse
import subprocess
import sys

weir, args = sys.argv[1], sys.argv[2:]
parser = argparse.ArgumentParser(prog="kafka-acls.sh (weir shim)")
parser.add_argument("--bootstrap-server", required=True)
action = parser.add_mutually_exclusive_group(required=True)
action.add_argument("--add", action="store_true")
action.add_argument("--remove", action="store_true")
parser.add_argument("--force", action="store_true", help="remove without asking (weir never asks)")
parser.add_argument("--allow-principal", action="append", default=[])
parser.add_argument("--deny-principal", action="append", default=[])
parser.add_argument("--allow-host", action="append", default=[])
parser.add_argument("--deny-host", action="append", default=[])
parser.add_argument("--operation", action="append", default=[])
parser.add_argument("--topic", action="append", default=[])
parser.add_argument("--group", action="append", default=[])
opts = parser.parse_args(args)

# Kafka pairs allow hosts with allow principals and deny hosts with deny
# principals; `weir acls` takes one host for all of them.
hosts = set(opts.allow_host if opts.allow_principal else []) | set(opts.deny_host if opts.deny_principal else [])
if len(hosts) > 1:
    sys.exit(f"kafka-acls.sh (weir shim): one host for every principal, not {sorted(hosts)}")
command = [weir, "acls", "add" if opts.add else "remove"]
for flag, values in (("--topic", opts.topic), ("--group", opts.group), ("--allow-principal", opts.allow_principal),
                     ("--deny-principal", opts.deny_principal), ("--operation", opts.operation), ("--host", hosts)):
    for value in values:
        command += [flag, value]
command += ["--bootstrap", opts.bootstrap_server]
print("kafka-acls.sh (weir shim):", " ".join(command), flush=True)
sys.exit(subprocess.run(command).returncode)
