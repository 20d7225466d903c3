#!/usr/bin/env node
// Admin + produce through the broker with kafkajs (a real third-party client).
//
// Usage: node kafkajs_roundtrip.js BOOTSTRAP TOPIC
//
//   * admin.createTopics (2 partitions), admin.listTopics, admin.fetchTopicMetadata,
//     admin.describeCluster;
//   * producer.send of 500 keyed messages with headers, acks=-1, idempotent,
//     the last 100 of them gzip-compressed;
//   * admin.fetchTopicOffsets: low watermarks 0, high watermarks summing to 500 and
//     matching the offsets the Produce responses reported;
//   * two consumers in one group read all 500 (each at least once, in order per
//     partition), commit, and admin.fetchOffsets / describeGroups show it.
'use strict';

const { Kafka, logLevel, CompressionTypes, Partitioners } = require('kafkajs');

const N_MESSAGES = 500;
const N_PARTITIONS = 2;
const PER_SEND = 100;

function fail(msg, err) {
  let detail = '';
  if (err) {
    detail = `: ${err.name}: ${err.message}`;
    if (err.type) detail += ` (type ${err.type}, code ${err.code})`;
    if (err.cause) detail += ` caused by ${err.cause.name}: ${err.cause.message}`;
  }
  console.error(`FAIL kafkajs: ${msg}${detail}`);
  process.exit(1);
}

async function step(what, fn) {
  try {
    return await fn();
  } catch (err) {
    fail(`${what} failed`, err);
  }
}

async function main() {
  const [bootstrap, topic] = process.argv.slice(2);
  if (!bootstrap || !topic) fail('usage: kafkajs_roundtrip.js BOOTSTRAP TOPIC');

  const kafka = new Kafka({
    clientId: 'weir-compat-kafkajs',
    brokers: [bootstrap],
    logLevel: logLevel.WARN,
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { retries: 3 },
  });

  const admin = kafka.admin();
  await step('admin.connect', () => admin.connect());

  const created = await step('admin.createTopics', () =>
    admin.createTopics({
      topics: [{ topic, numPartitions: N_PARTITIONS, replicationFactor: 1 }],
      waitForLeaders: true,
      timeout: 10000,
    }));
  if (created !== true) fail(`createTopics returned ${created}, expected true (topic is new)`);

  const topics = await step('admin.listTopics', () => admin.listTopics());
  if (!topics.includes(topic)) fail(`listTopics does not include ${topic}: ${JSON.stringify(topics)}`);

  const cluster = await step('admin.describeCluster', () => admin.describeCluster());
  if (!cluster.brokers || cluster.brokers.length < 1) {
    fail(`describeCluster shows no brokers: ${JSON.stringify(cluster)}`);
  }

  const md = await step('admin.fetchTopicMetadata', () => admin.fetchTopicMetadata({ topics: [topic] }));
  const tmd = md.topics.find((t) => t.name === topic);
  if (!tmd) fail(`fetchTopicMetadata lacks ${topic}: ${JSON.stringify(md)}`);
  const partIds = tmd.partitions.map((p) => p.partitionId).sort((a, b) => a - b);
  if (JSON.stringify(partIds) !== JSON.stringify([...Array(N_PARTITIONS).keys()])) {
    fail(`fetchTopicMetadata partitions ${JSON.stringify(partIds)}, expected 0..${N_PARTITIONS - 1}`);
  }
  for (const p of tmd.partitions) {
    if (p.partitionErrorCode !== 0 || p.leader < 0) {
      fail(`partition ${p.partitionId} metadata not usable: ${JSON.stringify(p)}`);
    }
  }

  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner, // Java-compatible murmur2; silences the v2 notice
    idempotent: true,
    allowAutoTopicCreation: false,
    maxInFlightRequests: 1,
  });
  await step('producer.connect', () => producer.connect());

  // Per partition: [baseOffset reported by each Produce response] for a sanity check.
  const reportedBases = new Map();
  for (let start = 0; start < N_MESSAGES; start += PER_SEND) {
    const messages = [];
    for (let i = start; i < Math.min(start + PER_SEND, N_MESSAGES); i++) {
      messages.push({
        key: `key-${i % 23}`,
        value: Buffer.from(`value-${i}-`.padEnd(1 + (i * 37) % 4000, 'x')),
        headers: { seq: String(i), bin: Buffer.from([i & 0xff, 0, 0xff]) },
      });
    }
    const gzip = start + PER_SEND >= N_MESSAGES;
    const res = await step(`producer.send (messages ${start}..${start + messages.length - 1}${gzip ? ', gzip' : ''})`,
      () => producer.send({
        topic,
        acks: -1,
        timeout: 15000,
        compression: gzip ? CompressionTypes.GZIP : CompressionTypes.None,
        messages,
      }));
    for (const r of res) {
      if (r.errorCode !== 0) fail(`produce response error: ${JSON.stringify(r)}`);
      if (!reportedBases.has(r.partition)) reportedBases.set(r.partition, []);
      reportedBases.get(r.partition).push(Number(r.baseOffset));
    }
  }
  await step('producer.disconnect', () => producer.disconnect());

  const offsets = await step('admin.fetchTopicOffsets', () => admin.fetchTopicOffsets(topic));
  let total = 0;
  for (const o of offsets) {
    if (Number(o.low) !== 0) fail(`partition ${o.partition}: low watermark ${o.low}, expected 0`);
    if (Number(o.high) !== Number(o.offset)) {
      fail(`partition ${o.partition}: offset ${o.offset} != high ${o.high}`);
    }
    total += Number(o.high);
    const bases = reportedBases.get(o.partition) || [];
    for (let i = 1; i < bases.length; i++) {
      if (bases[i] <= bases[i - 1]) fail(`partition ${o.partition}: produce base offsets not increasing: ${bases}`);
    }
    if (bases.length && (bases[0] !== 0 || bases[bases.length - 1] >= Number(o.high))) {
      fail(`partition ${o.partition}: produce base offsets ${bases} inconsistent with high watermark ${o.high}`);
    }
  }
  if (offsets.length !== N_PARTITIONS) fail(`fetchTopicOffsets returned ${offsets.length} partitions`);
  if (total !== N_MESSAGES) {
    fail(`high watermarks sum to ${total}, expected ${N_MESSAGES}: ${JSON.stringify(offsets)}`);
  }
  const groupId = `${topic}-group`;
  const seen = new Map(); // seq -> count
  const lastOffset = new Map(); // `${consumer}/${partition}` -> offset
  const consumers = [0, 1].map(() => kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000 }));
  for (const [i, consumer] of consumers.entries()) {
    await step(`consumer ${i} connect/subscribe`, async () => {
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
    });
    await step(`consumer ${i} run`, () => consumer.run({
      eachMessage: async ({ partition, message }) => {
        const key = `${i}/${partition}`;
        const offset = Number(message.offset);
        if (lastOffset.has(key) && offset <= lastOffset.get(key)) {
          fail(`consumer ${i} partition ${partition}: offset ${offset} after ${lastOffset.get(key)}`);
        }
        lastOffset.set(key, offset);
        const seq = message.headers.seq.toString();
        seen.set(seq, (seen.get(seq) || 0) + 1);
      },
    }));
  }
  const deadline = Date.now() + 60000;
  while (seen.size < N_MESSAGES) {
    if (Date.now() > deadline) fail(`the group consumed ${seen.size} of ${N_MESSAGES} messages in 60 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const [i, consumer] of consumers.entries()) {
    await step(`consumer ${i} disconnect`, () => consumer.disconnect()); // commits and leaves
  }
  const committed = await step('admin.fetchOffsets', () => admin.fetchOffsets({ groupId, topics: [topic] }));
  const committedByPartition = committed[0].partitions.map((p) => [p.partition, Number(p.offset)]);
  for (const o of offsets) {
    const c = committedByPartition.find(([p]) => p === o.partition);
    if (!c || c[1] !== Number(o.high)) {
      fail(`group committed ${JSON.stringify(committedByPartition)}, expected the high watermarks ${JSON.stringify(offsets)}`);
    }
  }
  const described = await step('admin.describeGroups', () => admin.describeGroups([groupId]));
  const group = described.groups[0];
  if (group.state !== 'Empty' || group.protocolType !== 'consumer') {
    fail(`describeGroups after both left: ${JSON.stringify(group)}`);
  }
  await step('admin.disconnect', () => admin.disconnect());

  console.log(`ok kafkajs: createTopics/listTopics/describeCluster/fetchTopicMetadata, ${N_MESSAGES} messages produced `
    + `(acks=-1, last ${PER_SEND} gzip), high watermarks ${JSON.stringify(offsets.map((o) => [o.partition, Number(o.high)]))}`
    + `, group of 2 consumed all (max ${Math.max(...seen.values())} deliveries of one message) and committed the ends`);
}

main().catch((err) => fail('unexpected error', err));
