// Opens N WebSocket connections (the `ws` package) to one URL from this one
// process, for test_edge_ws.py's broadcast test.
//   node many.js URL N
// Prints {"ev":"opened","n":N} once every connection is open (connecting
// in batches so the listen backlog never overflows), then, once every
// connection has received its first message, {"ev":"received","n":N,
// "distinct":[...the distinct first messages...],"closed":K} and exits.
// Any connection error or close before that is reported as it happens.
'use strict';
const WebSocket = require('ws');

const url = process.argv[2];
const total = parseInt(process.argv[3], 10);
const BATCH = 250;
let opened = 0;
let received = 0;
let closed = 0;
const firsts = new Map();
const socks = [];

function emit(o) {
  process.stdout.write(JSON.stringify(o) + '\n');
}

function finish() {
  emit({ ev: 'received', n: received, distinct: Array.from(firsts.keys()), closed });
  for (const ws of socks) ws.terminate();
  process.exit(0);
}

function openOne() {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 30000 });
    let got = false;
    socks.push(ws);
    ws.on('open', () => { opened++; resolve(); });
    ws.on('message', (data) => {
      if (got) return;
      got = true;
      const text = data.toString('utf8');
      firsts.set(text, (firsts.get(text) || 0) + 1);
      if (++received === total) finish();
    });
    ws.on('close', (code) => { closed++; emit({ ev: 'close', code }); resolve(); });
    ws.on('error', (e) => emit({ ev: 'error', message: String(e && e.message) }));
  });
}

async function main() {
  for (let i = 0; i < total; i += BATCH) {
    const batch = [];
    for (let j = i; j < Math.min(total, i + BATCH); j++) batch.push(openOne());
    await Promise.all(batch);
  }
  emit({ ev: 'opened', n: opened });
}

process.stdin.on('data', () => {});
process.stdin.on('end', finish);
main();
