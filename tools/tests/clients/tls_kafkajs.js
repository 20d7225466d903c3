#!/usr/bin/env node
// kafkajs over SSL and SASL_SSL (Node's TLS, kafkajs's own SCRAM).
//
// Usage: node tls_kafkajs.js SSL_BOOTSTRAP SASL_SSL_BOOTSTRAP CERT_DIR PREFIX USER PASSWORD
//
// CERT_DIR is what tools/tests/tls_certs.sh made. Against each listener: N
// messages produced (acks=-1) to one partition and read back in order by a
// consumer group; over SASL_SSL a wrong password fails with kafkajs's
// authentication error.
'use strict';

const fs = require('fs');
const { Kafka, logLevel } = require('kafkajs');

const [sslBootstrap, saslBootstrap, certs, prefix, user, password] = process.argv.slice(2);
const N = 200;
const TIMEOUT_MS = 60000;

function fail(msg, err) {
  console.error(`FAIL tls_kafkajs: ${msg}${err ? `: ${err.name}: ${err.message}` : ''}`);
  process.exit(1);
}

const ssl = { ca: [fs.readFileSync(`${certs}/ca.pem`, 'utf-8')] };

function client(name, brokers, sasl) {
  return new Kafka({ clientId: `tls-${name}`, brokers: [brokers], ssl, sasl, logLevel: logLevel.NOTHING,
                     retry: { retries: 3 } });
}

async function roundTrip(name, kafka) {
  const topic = `${prefix}-${name}`;
  const values = Array.from({ length: N }, (_, i) => `${topic}-${i}-` + 'z'.repeat((i * 53) % 2500));
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, acks: -1, messages: values.map((value) => ({ value, partition: 0 })) });
  await producer.disconnect();
  const consumer = kafka.consumer({ groupId: `${topic}-readers` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const got = [];
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`read ${got.length} of ${N}`)), TIMEOUT_MS);
    consumer.run({
      eachMessage: async ({ message }) => {
        got.push(message.value.toString());
        if (got.length === N) {
          clearTimeout(timer);
          resolve();
        }
      },
    });
  });
  await consumer.disconnect();
  if (JSON.stringify(got) !== JSON.stringify(values)) fail(`${name}: read back other values than produced`);
  console.log(`ok tls_kafkajs [${name}]: ${N} produced and read back in order`);
}

async function main() {
  const scram = (pass) => ({ mechanism: 'scram-sha-256', username: user, password: pass });
  await roundTrip('ssl', client('ssl', sslBootstrap));
  await roundTrip('sasl-ssl', client('sasl-ssl', saslBootstrap, scram(password)));
  const wrong = client('wrong', saslBootstrap, scram(`not-${password}`)).admin();
  try {
    await wrong.connect();
  } catch (e) {
    if (e.name !== 'KafkaJSSASLAuthenticationError') fail('wrong password: not an authentication error', e);
    console.log(`ok tls_kafkajs [wrong-password]: ${e.name}`);
    return;
  }
  fail('wrong password: connected');
}

main().catch((e) => fail('unexpected', e));
