// Opens N WebSocket connections (the `ws` package) to one URL and checks a
// stream of K events on each, for test_edge_ws.py's sustained fan-out test.
//   node stream.js URL N K DROP
// Every connection must receive K JSON envelopes whose seq runs 1, 2, ... K
// in order, with no gap and no repeat. With DROP > 0, every DROP-th
// connection terminates itself (a TCP close, no close frame) after K/4
// events, so the edge closes clients in the middle of a fan-out.
// Prints {"ev":"opened","n":N} once every connection is open, then
// {"ev":"done","complete":C,"dropped":D,"bad":[...first problems...],
// "closed":X} once every connection has all K events or dropped, or on
// stdin's end (the test's timeout), and exits.
'use strict';
const WebSocket = require('ws');

const url = process.argv[2];
const total = parseInt(process.argv[3], 10);
const want = parseInt(process.argv[4], 10);
const drop = parseInt(process.argv[5], 10);
const BATCH = 250;
let opened = 0;
let complete = 0;
let dropped = 0;
let closed = 0;
const bad = [];
const socks = [];

function emit(o) {
  process.stdout.write(JSON.stringify(o) + '\n');
}

function finish() {
  emit({ ev: 'done', complete, dropped, bad: bad.slice(0, 10), closed });
  for (const ws of socks) ws.terminate();
  process.exit(0);
}

function settle() {
  if (complete + dropped === total) finish();
}

function openOne(i) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 30000 });
    const dropper = drop > 0 && i % drop === 0;
    let next = 1;
    let done = false;
    socks.push(ws);
    ws.on('open', () => { opened++; resolve(); });
    ws.on('message', (data) => {
      if (done) return;
      let seq;
      try {
        seq = JSON.parse(data.toString('utf8')).seq;
      } catch (e) {
        seq = -1;
      }
      if (seq !== next) {
        bad.push({ conn: i, want: next, got: seq });
        done = true;
        complete++; // counted, so the run ends; bad says why
        settle();
        return;
      }
      next++;
      if (dropper && next > want / 4) {
        done = true;
        dropped++;
        ws.terminate();
        settle();
      } else if (next > want) {
        done = true;
        complete++;
        settle();
      }
    });
    ws.on('close', () => {
      if (!done) { closed++; done = true; complete++; settle(); }
      resolve();
    });
    ws.on('error', (e) => bad.push({ conn: i, error: String(e && e.message) }));
  });
}

async function main() {
  for (let i = 0; i < total; i += BATCH) {
    const batch = [];
    for (let j = i; j < Math.min(total, i + BATCH); j++) batch.push(openOne(j));
    await Promise.all(batch);
  }
  emit({ ev: 'opened', n: opened });
}

process.stdin.on('data', () => {});
process.stdin.on('end', finish);
main();
