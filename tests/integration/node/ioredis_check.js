// Drives herald-broker's RESP endpoint with ioredis, a real Redis client
// library (tests/integration/test_broker_clientlib.py runs it).
//
//   node ioredis_check.js PORT [--password PW]            pub/sub scenario
//   node ioredis_check.js PORT --password PW --expect-wrongpass
//
// Prints one JSON object with what it saw and exits 0 only when every check
// passed; on failure the JSON has "ok": false and "failure".
'use strict';

const Redis = require('ioredis');

const args = process.argv.slice(2);
const port = Number(args[0]);
const pwIdx = args.indexOf('--password');
const password = pwIdx >= 0 ? args[pwIdx + 1] : undefined;
const expectWrongpass = args.includes('--expect-wrongpass');

const result = { ok: false };

function finish(ok, failure) {
  result.ok = ok;
  if (failure) result.failure = String(failure);
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(ok ? 0 : 1);
}

function check(cond, what) {
  if (!cond) throw new Error('check failed: ' + what);
}

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

function client() {
  return new Redis({
    host: '127.0.0.1',
    port,
    password,
    lazyConnect: true,
    retryStrategy: () => null, // no reconnects: a drop is a failure
    maxRetriesPerRequest: 0,
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(pred, ms, what) {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await sleep(10);
  }
}

// The AUTH that ioredis sends on connect fails: it reports the server's
// error as an 'error' event and connect() rejects; nothing else runs.
async function wrongpass() {
  const r = client();
  const errors = [];
  r.on('error', (e) => errors.push(e.message));
  let connectError = null;
  try {
    await r.connect();
    result.ping = await r.ping();
  } catch (e) {
    connectError = e.message;
  }
  r.disconnect();
  result.connectError = connectError;
  result.errorEvents = errors;
  check(connectError !== null, 'connect() rejected');
  check(errors.length === 1 && errors[0].startsWith('WRONGPASS '), 'one WRONGPASS error event');
}

async function pubsub() {
  const sub = client();
  const pub = client();
  const errors = [];
  sub.on('error', (e) => errors.push('sub: ' + e.message));
  pub.on('error', (e) => errors.push('pub: ' + e.message));
  await sub.connect();
  await pub.connect();

  const pmessages = [];
  const messages = [];
  sub.on('pmessage', (pattern, channel, message) => pmessages.push([pattern, channel, message]));
  sub.on('message', (channel, message) => messages.push([channel, message]));

  result.psubscribe = await sub.psubscribe('user.*.mail');
  result.subscribe = await sub.subscribe('news');
  check(result.psubscribe === 1, 'psubscribe count 1');
  check(result.subscribe === 2, 'subscribe count 2');

  result.publish = [
    await pub.publish('user.42.mail', 'hi'),
    await pub.publish('news', 'n'),
    await pub.publish('nobody.listens', 'x'),
  ];
  check(same(result.publish, [1, 1, 0]), 'publish receivers [1,1,0]');
  await waitFor(() => pmessages.length >= 1 && messages.length >= 1, 15000, 'both messages');
  // Anything duplicated would arrive right behind: give it time to show.
  await sleep(200);
  result.pmessages = pmessages.slice();
  result.messages = messages.slice();
  check(same(pmessages, [['user.*.mail', 'user.42.mail', 'hi']]), 'one pmessage');
  check(same(messages, [['news', 'n']]), 'one message');

  result.ping = await pub.ping();
  check(result.ping === 'PONG', 'PONG');
  const text = 'héllo wörld \r\n $5 *2';
  result.echo = await pub.echo(text);
  check(result.echo === text, 'echo');

  // A payload far above the broker's copy threshold: shared by reference.
  const big = 'b'.repeat(20000);
  check((await pub.publish('news', big)) === 1, 'big publish');
  await waitFor(() => messages.length >= 2, 15000, 'big message');
  check(messages[1][0] === 'news' && messages[1][1] === big, 'big message intact');

  const p = pub.pipeline();
  for (let i = 0; i < 100; i++) p.publish('user.' + i + '.mail', 'm' + i);
  const res = await p.exec();
  result.pipelineLength = res.length;
  result.pipelineAllOk = res.every((r) => same(r, [null, 1]));
  check(res.length === 100 && result.pipelineAllOk, 'pipeline results all [null, 1]');
  await waitFor(() => pmessages.length >= 101, 15000, '100 pipelined pmessages');
  await sleep(100);
  check(pmessages.length === 101, 'exactly 100 pipelined pmessages, got ' + (pmessages.length - 1));
  for (let i = 0; i < 100; i++) {
    const want = ['user.*.mail', 'user.' + i + '.mail', 'm' + i];
    check(same(pmessages[i + 1], want), 'pmessage ' + i + ' in order');
  }

  result.quit = [await sub.quit(), await pub.quit()];
  check(same(result.quit, ['OK', 'OK']), 'quit OK');
  result.errors = errors;
  check(errors.length === 0, 'no client errors');
}

const timer = setTimeout(() => finish(false, 'timeout after 60s'), 60000);

(expectWrongpass ? wrongpass() : pubsub()).then(
  () => {
    clearTimeout(timer);
    finish(true);
  },
  (e) => {
    clearTimeout(timer);
    finish(false, e && e.stack ? e.stack : e);
  }
);
