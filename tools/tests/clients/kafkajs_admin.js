#!/usr/bin/env node
// kafkajs: listing every topic, a regex subscription, the admin API, and the
// gzip codec topic.
//
// Usage: node kafkajs_admin.js BOOTSTRAP PREFIX
//
//   * admin.fetchTopicMetadata() with no topics and admin.listTopics() (all-topics
//     Metadata) list the topics created here;
//   * a group consumer subscribed to /^PREFIX-re-.*/ reads what was produced to
//     the two topics that match, nothing of the third;
//   * admin: createTopics with configEntries, describeConfigs, alterConfigs (not
//     incremental: what it leaves out goes back to its default, as in Kafka),
//     createPartitions (and fewer: INVALID_PARTITIONS), an unknown config
//     (INVALID_CONFIG), deleteTopics;
//   * the gzip codec topic (the only codec kafkajs has without plugins) of
//     compat.py's records, DefaultPartitioner (murmur2); cross_read.py checks
//     its partitions and reads it with another client.
'use strict';

const { Kafka, logLevel, CompressionTypes, ConfigResourceTypes, Partitioners } = require('kafkajs');

const [bootstrap, prefix] = process.argv.slice(2);
const CODEC_PARTITIONS = 4; // compat.py's
const CODEC_RECORDS = 200;

function fail(msg, err) {
  const detail = err ? `: ${err.name}: ${err.message} ${JSON.stringify(errorTypes(err))}` : '';
  console.error(`FAIL kafkajs: ${msg}${detail}`);
  process.exit(1);
}

function check(condition, msg) {
  if (!condition) fail(msg);
}

function errorTypes(err) {
  return [err.type, ...(err.errors || []).map((e) => e.type)].filter(Boolean);
}

async function expectError(type, what, fn) {
  try {
    await fn();
  } catch (err) {
    check(errorTypes(err).includes(type), `${what}: ${err.name} ${err.message} ${JSON.stringify(errorTypes(err))}, want ${type}`);
    return;
  }
  fail(`${what} succeeded, want ${type}`);
}

const kafka = new Kafka({
  clientId: 'weir-compat-kafkajs-admin',
  brokers: [bootstrap],
  logLevel: logLevel.NOTHING,
  connectionTimeout: 5000,
  requestTimeout: 15000,
  retry: { retries: 3 },
});

async function produce(topic, messages, compression = CompressionTypes.None) {
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  await producer.send({ topic, acks: -1, compression, messages });
  await producer.disconnect();
}

async function regexSubscription(admin) {
  const topics = [`${prefix}-re-a`, `${prefix}-re-b`, `${prefix}-other`];
  await admin.createTopics({ topics: topics.map((topic) => ({ topic, numPartitions: 2 })) });
  const all = await admin.fetchTopicMetadata();
  const names = all.topics.map((t) => t.name);
  check(topics.every((t) => names.includes(t)), `fetchTopicMetadata() lacks some of ${topics}: ${names}`);
  check(all.topics.filter((t) => topics.includes(t.name)).every((t) => t.partitions.length === 2),
    'fetchTopicMetadata(): not 2 partitions each');
  const listed = await admin.listTopics();
  check(topics.every((t) => listed.includes(t)), `listTopics() lacks some of ${topics}: ${listed}`);
  for (const t of topics) {
    await produce(t, [...Array(50).keys()].map((i) => ({ key: `k${i}`, value: `${t}/${i}` })));
  }

  const consumer = kafka.consumer({ groupId: `${prefix}-regex`, sessionTimeout: 10000, heartbeatInterval: 1000 });
  await consumer.connect();
  const escaped = prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  await consumer.subscribe({ topics: [new RegExp(`^${escaped}-re-.*`)], fromBeginning: true });
  const got = new Map();
  await consumer.run({ eachMessage: async ({ topic, message }) => { got.set(message.value.toString(), topic); } });
  const deadline = Date.now() + 30000;
  while (got.size < 100 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  await new Promise((r) => setTimeout(r, 1000)); // anything more would be wrong
  await consumer.disconnect();
  const want = topics.slice(0, 2).flatMap((t) => [...Array(50).keys()].map((i) => `${t}/${i}`));
  check(got.size === 100 && want.every((v) => got.has(v)),
    `regex subscription read ${got.size} records from ${[...new Set(got.values())]}, want the 100 of ${topics.slice(0, 2)}`);
}

async function configsOf(admin, topic) {
  const res = await admin.describeConfigs({ resources: [{ type: ConfigResourceTypes.TOPIC, name: topic }], includeSynonyms: false });
  const r = res.resources[0];
  check(r.errorCode === 0, `describeConfigs: error ${r.errorCode}`);
  return new Map(r.configEntries.map((e) => [e.configName, e]));
}

async function adminScenario(admin) {
  const topic = `${prefix}-admin`;
  const wanted = { 'cleanup.policy': 'compact', 'min.cleanable.dirty.ratio': '0.3', 'retention.ms': '86400000' };
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions: 2, configEntries: Object.entries(wanted).map(([name, value]) => ({ name, value })) }],
  });
  check(created === true, `createTopics returned ${created}`);
  let configs = await configsOf(admin, topic);
  for (const [name, value] of Object.entries(wanted)) {
    const e = configs.get(name);
    check(e && e.configValue === value && e.configSource === 1 && !e.isDefault,
      `describeConfigs ${name}: ${JSON.stringify(e)}, want ${value} from DYNAMIC_TOPIC_CONFIG (1)`);
  }
  check(configs.has('segment.bytes') && configs.get('segment.bytes').configSource !== 1,
    `describeConfigs segment.bytes: ${JSON.stringify(configs.get('segment.bytes'))}`);

  // AlterConfigs replaces the topic's whole set: min.cleanable.dirty.ratio, left out, goes back to its default.
  await admin.alterConfigs({
    resources: [{
      type: ConfigResourceTypes.TOPIC,
      name: topic,
      configEntries: [{ name: 'cleanup.policy', value: 'compact' }, { name: 'retention.ms', value: '3600000' }],
    }],
  });
  configs = await configsOf(admin, topic);
  check(configs.get('retention.ms').configValue === '3600000', `after alterConfigs: ${JSON.stringify(configs.get('retention.ms'))}`);
  const ratio = configs.get('min.cleanable.dirty.ratio');
  check(ratio.configValue === '0.5' && ratio.configSource !== 1,
    `after alterConfigs without it: min.cleanable.dirty.ratio ${JSON.stringify(ratio)}, want the default 0.5`);

  await admin.createPartitions({ topicPartitions: [{ topic, count: 5 }] });
  const md = await admin.fetchTopicMetadata({ topics: [topic] });
  check(md.topics[0].partitions.length === 5, `after createPartitions: ${md.topics[0].partitions.length} partitions`);
  await expectError('INVALID_PARTITIONS', 'createPartitions to fewer',
    () => admin.createPartitions({ topicPartitions: [{ topic, count: 3 }] }));
  await expectError('INVALID_CONFIG', 'createTopics with an unknown config', () => admin.createTopics({
    topics: [{ topic: `${prefix}-bad-config`, configEntries: [{ name: 'no.such.config', value: '1' }] }],
  }));

  await admin.deleteTopics({ topics: [topic] });
  const deadline = Date.now() + 30000;
  while ((await admin.listTopics()).includes(topic)) {
    check(Date.now() < deadline, `${topic} still listed after deleteTopics`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function gzipTopic(admin) {
  const topic = `${prefix}-codec-kafkajs-gzip`;
  await admin.createTopics({ topics: [{ topic, numPartitions: CODEC_PARTITIONS }] });
  const messages = [...Array(CODEC_RECORDS).keys()].map((i) => ({
    key: `key-${i % 50}`,
    value: `kafkajs/gzip/${String(i).padStart(4, '0')}/${'abc'.repeat(i % 200)}`,
  }));
  await produce(topic, messages, CompressionTypes.GZIP);
}

async function main() {
  if (!bootstrap || !prefix) fail('usage: kafkajs_admin.js BOOTSTRAP PREFIX');
  const admin = kafka.admin();
  await admin.connect();
  await regexSubscription(admin);
  await adminScenario(admin);
  await gzipTopic(admin);
  await admin.disconnect();
  console.log('ok kafkajs: fetchTopicMetadata()/listTopics() of all topics, regex subscription, admin (createTopics with '
    + 'configs, describeConfigs, alterConfigs, createPartitions, deleteTopics), gzip codec topic');
}

main().catch((err) => fail('unexpected error', err));
