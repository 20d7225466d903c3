#!/usr/bin/env node
// kafkajs through a leader failover (driven by failover.py): produces
// sequentially numbered values, each awaited (acks=-1, idempotent), until
// its standard input closes, while a consumer group reads the topic from
// the beginning; prints "producing" once the first value is acknowledged.
// Then it reads on until it has every acknowledged value (60 s at most)
// and prints one JSON line: {"acked": [n...], "acked_at": [ms since the
// epoch...], "failed": count, "consumed": [n...]}.
//
// Usage: node failover_kafkajs.js BOOTSTRAP TOPIC
'use strict';

const { Kafka, logLevel } = require('kafkajs');

async function main() {
  const [bootstrap, topic] = process.argv.slice(2);
  let producing = true;
  process.stdin.on('end', () => (producing = false)).resume();
  const kafka = new Kafka({
    clientId: 'weir-failover-kafkajs',
    brokers: bootstrap.split(','),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    requestTimeout: 10000,
    retry: { retries: 10, initialRetryTime: 200, maxRetryTime: 2000 },
  });
  const consumed = [];
  const consumer = kafka.consumer({ groupId: `${topic}-kafkajs`, sessionTimeout: 10000, heartbeatInterval: 1000 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      const value = message.value.toString();
      if (value.startsWith('kafkajs-')) consumed.push(Number(value.slice('kafkajs-'.length)));
    },
  });

  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  const acked = [];
  const ackedAt = [];
  let failed = 0;
  for (let n = 0; producing; n++) {
    try {
      await producer.send({ topic, acks: -1, messages: [{ value: `kafkajs-${n}` }] });
      if (acked.length === 0) console.log('producing');
      acked.push(n);
      ackedAt.push(Date.now());
    } catch (err) {
      // Not acknowledged: it may or may not be in the log.
      failed++;
    }
  }
  await producer.disconnect();

  const seen = () => new Set(consumed);
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline && !acked.every((n) => seen().has(n))) {
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await consumer.disconnect();
  console.log(JSON.stringify({ acked, acked_at: ackedAt, failed, consumed }));
}

main().catch((err) => {
  console.error(`FAIL kafkajs: ${err.name}: ${err.message}`);
  process.exit(1);
});
