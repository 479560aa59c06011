// Drives WebSocket clients (the `ws` package) for test_edge_ws.py.
//
// Commands arrive on stdin, one JSON object a line; events leave on stdout,
// one JSON object a line. Every connection has a test-chosen id.
//   {"cmd":"open","id":"a","url":"ws://...","protocols":["herald.v1"]}
//   {"cmd":"open","id":"b","url":"wss://...","ca":"/path/cert.pem"}  trusting that PEM only
//   {"cmd":"send","id":"a","text":"..."}     a text message
//   {"cmd":"ping","id":"a","data":"..."}     a WebSocket ping
//   {"cmd":"close","id":"a","code":1000}
// Events: open (protocol, extensions), msg (text, or hex for binary),
// pong, close (code, reason), error (message). stdin closing ends the process.
'use strict';
const fs = require('fs');
const WebSocket = require('ws');
const readline = require('readline');

const socks = new Map();

function emit(o) {
  process.stdout.write(JSON.stringify(o) + '\n');
}

function open(c) {
  const opts = { handshakeTimeout: 10000 };
  if (c.ca) opts.ca = fs.readFileSync(c.ca);
  const ws = new WebSocket(c.url, c.protocols || [], opts);
  socks.set(c.id, ws);
  ws.on('open', () => emit({ ev: 'open', id: c.id, protocol: ws.protocol, extensions: ws.extensions }));
  ws.on('message', (data, isBinary) => {
    if (isBinary) emit({ ev: 'msg', id: c.id, binary: true, hex: data.toString('hex') });
    else emit({ ev: 'msg', id: c.id, binary: false, text: data.toString('utf8') });
  });
  ws.on('pong', (data) => emit({ ev: 'pong', id: c.id, text: data.toString('utf8') }));
  ws.on('close', (code, reason) => emit({ ev: 'close', id: c.id, code, reason: reason.toString() }));
  ws.on('error', (e) => emit({ ev: 'error', id: c.id, message: String(e && e.message) }));
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  const c = JSON.parse(line);
  const ws = socks.get(c.id);
  switch (c.cmd) {
    case 'open': open(c); break;
    case 'send': ws.send(c.text); break;
    case 'ping': ws.ping(c.data || ''); break;
    case 'close': ws.close(c.code, c.reason); break;
    default: emit({ ev: 'error', id: c.id, message: 'unknown command ' + c.cmd });
  }
});
rl.on('close', () => {
  for (const ws of socks.values()) ws.terminate();
  process.exit(0);
});
