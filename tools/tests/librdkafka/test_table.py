"""Prints librdkafka's test table (tests/test.c) as one line per test:
name, flags and scenario."""
import re
import sys

text = open(sys.argv[1]).read()
body = text[text.index("struct test tests[] = {"):]
for match in re.finditer(r"\b_TEST\(", body):
    start = end = match.end()
    depth = 1
    while depth:
        depth += {"(": 1, ")": -1}.get(body[end], 0)
        end += 1
    entry = body[start:end - 1]
    name, flags = (part.strip() for part in entry.split(",")[:2])
    scenario = re.search(r'\.scenario\s*=\s*"([^"]*)"', entry)
    print(name, flags.replace(" ", ""), scenario.group(1) if scenario else "default")
