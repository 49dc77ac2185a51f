#!/usr/bin/env node
// inventory-api: the shop's stock-keeping service.
//
// A plain Node.js HTTP service (standard library only, nothing to install):
//
//   GET  /healthz          200 "ok" while the process is alive (liveness)
//   GET  /readyz           200 once listening, 503 while starting or draining (readiness)
//   GET  /version          {"version": APP_VERSION, "service": "inventory-api", "release": ...}
//   GET  /api/items        {"items": [...], "count": N, "release": ...}   (?limit=N, default 50)
//   GET  /api/items/:id    {"item": {...}, "release": ...} or 404 {"error": ..., "release": ...}
//   POST /api/items        JSON body {"name": ..., "quantity": N, "sku": ...} -> 201 {"item": {...}}
//                          400 on a body that is not JSON or not a valid item
//
// Every JSON response carries "release": APP_VERSION at the top level, so a client (or a
// load test) can tell which build answered it.
//
// Environment: HOST (default 127.0.0.1), PORT (default 8080), APP_VERSION (default "dev"),
// ACCESS_LOG=1 for one log line per request on stdout.
//
// SIGTERM / SIGINT: stop accepting connections, let in-flight requests finish, exit 0
// (at the latest after SHUTDOWN_DEADLINE_MS, well inside the pod's termination grace period).

'use strict';

const http = require('node:http');

const SERVICE = 'inventory-api';
const HOST = process.env.HOST || '127.0.0.1';
const PORT = parsePort(process.env.PORT, 8080);
const VERSION = process.env.APP_VERSION || 'dev';
const ACCESS_LOG = process.env.ACCESS_LOG === '1';
const SHUTDOWN_DEADLINE_MS = 1500;
const MAX_BODY_BYTES = 64 * 1024;
const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 500;
const MAX_CREATED = 1000; // created items kept per process (oldest dropped first)

function parsePort(value, fallback) {
  if (value === undefined || value === '') return fallback;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`${SERVICE}: PORT=${value} is not a TCP port`);
    process.exit(2);
  }
  return port;
}

// -- the store ------------------------------------------------------------------------------
// Every replica starts with the same seed catalog (ids 1-6), so reads of those ids succeed on
// whichever replica answers. Items created at runtime live in this process only.
const SEED = [
  { id: 1, sku: 'TSHIRT-BLK-M', name: 'T-shirt, black, M', quantity: 120 },
  { id: 2, sku: 'TSHIRT-WHT-L', name: 'T-shirt, white, L', quantity: 85 },
  { id: 3, sku: 'HOODIE-GRY-M', name: 'Hoodie, grey, M', quantity: 40 },
  { id: 4, sku: 'MUG-LOGO', name: 'Mug with logo', quantity: 300 },
  { id: 5, sku: 'STICKER-PACK', name: 'Sticker pack', quantity: 1000 },
  { id: 6, sku: 'CAP-NAVY', name: 'Cap, navy', quantity: 0 },
];

const items = new Map(SEED.map((item) => [item.id, { ...item, created_at: null }]));
const created = []; // ids created at runtime, oldest first
let nextId = 1001;

function createItem(fields) {
  const item = {
    id: nextId++,
    sku: fields.sku,
    name: fields.name,
    quantity: fields.quantity,
    created_at: new Date().toISOString(),
  };
  items.set(item.id, item);
  created.push(item.id);
  while (created.length > MAX_CREATED) items.delete(created.shift());
  return item;
}

function validateItem(body) {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return { error: 'the body must be a JSON object' };
  }
  const name = typeof body.name === 'string' ? body.name.trim() : '';
  if (!name || name.length > 200) return { error: 'name must be a non-empty string of at most 200 characters' };
  const quantity = body.quantity === undefined ? 0 : body.quantity;
  if (!Number.isInteger(quantity) || quantity < 0 || quantity > 1e9) {
    return { error: 'quantity must be a whole number from 0 to 1000000000' };
  }
  let sku = body.sku === undefined ? null : body.sku;
  if (sku !== null && (typeof sku !== 'string' || sku.length > 64)) {
    return { error: 'sku must be a string of at most 64 characters' };
  }
  if (sku === null) sku = `SKU-${nextId}`;
  return { value: { name, quantity, sku } };
}

// -- responses -------------------------------------------------------------------------------
let draining = false;
let ready = false;

function send(res, status, body, contentType, extraHeaders) {
  const payload = Buffer.from(body);
  const headers = {
    'Content-Type': contentType,
    'Content-Length': payload.length,
    'Cache-Control': 'no-store',
    ...extraHeaders,
  };
  if (draining) headers.Connection = 'close';
  res.bodyBytes = payload.length; // for the access log
  res.writeHead(status, headers);
  res.end(res.req.method === 'HEAD' ? undefined : payload);
}

function sendJson(res, status, data, extraHeaders) {
  // The release goes first so it is easy to spot in a response.
  send(res, status, JSON.stringify({ release: VERSION, ...data }), 'application/json; charset=utf-8', extraHeaders);
}

function sendText(res, status, text) {
  send(res, status, `${text}\n`, 'text/plain; charset=utf-8');
}

function notFound(res, path) {
  sendJson(res, 404, { error: 'not found', path });
}

function methodNotAllowed(res, allowed) {
  sendJson(res, 405, { error: 'method not allowed', allowed }, { Allow: allowed.join(', ') });
}

function readBody(req, res, onBody) {
  const chunks = [];
  let size = 0;
  let tooLarge = false;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) tooLarge = true;
    else chunks.push(chunk);
  });
  req.on('end', () => {
    if (tooLarge) return sendJson(res, 413, { error: `body over ${MAX_BODY_BYTES} bytes` });
    return onBody(Buffer.concat(chunks).toString('utf8'));
  });
  req.on('error', () => {
    if (!res.headersSent) sendJson(res, 400, { error: 'could not read the request body' });
  });
}

// -- routes ----------------------------------------------------------------------------------
const ITEM_PATH = /^\/api\/items\/([^/]+)$/;

function handle(req, res) {
  const url = new URL(req.url, 'http://inventory-api.local');
  const path = url.pathname.length > 1 ? url.pathname.replace(/\/+$/, '') : url.pathname;
  const method = req.method === 'HEAD' ? 'GET' : req.method;

  if (path === '/healthz') {
    return method === 'GET' ? sendText(res, 200, 'ok') : methodNotAllowed(res, ['GET']);
  }
  if (path === '/readyz') {
    if (method !== 'GET') return methodNotAllowed(res, ['GET']);
    if (draining) return sendText(res, 503, 'draining');
    return ready ? sendText(res, 200, 'ready') : sendText(res, 503, 'starting');
  }
  if (path === '/version') {
    return method === 'GET' ? sendJson(res, 200, { version: VERSION, service: SERVICE }) : methodNotAllowed(res, ['GET']);
  }
  if (path === '/api/items') {
    if (method === 'GET') {
      const raw = url.searchParams.get('limit');
      const limit = raw === null ? DEFAULT_LIMIT : Number(raw);
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_LIMIT) {
        return sendJson(res, 400, { error: `limit must be a whole number from 1 to ${MAX_LIMIT}` });
      }
      const list = Array.from(items.values()).slice(0, limit);
      return sendJson(res, 200, { items: list, count: list.length, total: items.size });
    }
    if (method === 'POST') {
      return readBody(req, res, (text) => {
        let body;
        try {
          body = JSON.parse(text);
        } catch (err) {
          return sendJson(res, 400, { error: 'the body is not valid JSON' });
        }
        const checked = validateItem(body);
        if (checked.error) return sendJson(res, 400, { error: checked.error });
        const item = createItem(checked.value);
        return sendJson(res, 201, { item }, { Location: `/api/items/${item.id}` });
      });
    }
    return methodNotAllowed(res, ['GET', 'POST']);
  }
  const match = ITEM_PATH.exec(path);
  if (match) {
    if (method !== 'GET') return methodNotAllowed(res, ['GET']);
    const id = /^[0-9]{1,9}$/.test(match[1]) ? Number(match[1]) : NaN;
    const item = items.get(id);
    if (!item) return sendJson(res, 404, { error: 'item not found', id: match[1] });
    return sendJson(res, 200, { item });
  }
  return notFound(res, path);
}

// -- the server ------------------------------------------------------------------------------
const server = http.createServer((req, res) => {
  const started = process.hrtime.bigint();
  if (ACCESS_LOG) {
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const length = res.bodyBytes || 0;
      process.stdout.write(`${new Date().toISOString()} ${req.socket.remoteAddress || '-'} "${req.method} ${req.url} ` +
        `HTTP/${req.httpVersion}" ${res.statusCode} ${length} ${ms.toFixed(1)}ms release=${VERSION}\n`);
    });
  }
  try {
    handle(req, res);
  } catch (err) {
    console.error(`${SERVICE}: ${req.method} ${req.url} failed: ${err && err.stack ? err.stack : err}`);
    if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
    else res.destroy();
  }
});
server.keepAliveTimeout = 5000;
server.headersTimeout = 10000;

server.on('error', (err) => {
  console.error(`${SERVICE}: cannot listen on ${HOST}:${PORT}: ${err.message}`);
  process.exit(1);
});

server.listen(PORT, HOST, () => {
  ready = true;
  const address = server.address();
  console.log(`${SERVICE} ${VERSION} listening on http://${address.address}:${address.port} (pid ${process.pid})`);
});

function shutdown(signal) {
  if (draining) return;
  draining = true;
  ready = false;
  console.log(`${SERVICE}: ${signal} received, draining`);
  // Stop accepting; requests already being served finish and their connections close
  // (responses sent while draining say Connection: close). Idle keep-alive connections go now.
  server.close(() => {
    console.log(`${SERVICE}: drained, exiting`);
    process.exit(0);
  });
  server.closeIdleConnections();
  // Whatever is still open at the deadline is cut so the process always exits in time.
  setTimeout(() => {
    console.log(`${SERVICE}: shutdown deadline reached, closing remaining connections`);
    server.closeAllConnections();
    process.exit(0);
  }, SHUTDOWN_DEADLINE_MS).unref();
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
