'use strict';
/**
 * Runs the telegram-test-api Bot API emulator for the Lotse end-to-end tests.
 *
 * Usage: node server.js [port]   (or EMULATOR_PORT=<port> node server.js)
 *
 * Prints "EMULATOR READY <port>" on stdout once it listens on 127.0.0.1, and
 * stops on SIGTERM/SIGINT. With EMULATOR_EXIT_WITH_PARENT=1 it also stops when
 * its stdin closes, so a test run that dies hard leaves no orphan behind.
 * The emulator's gaps are mended by the Python harness (telegram_harness.py).
 */
const TelegramServer = require('telegram-test-api');

// The emulator treats port 0 as "unset" and falls back to 9000, so insist on a real port.
const port = Number.parseInt(process.argv[2] || process.env.EMULATOR_PORT || '', 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write('usage: node server.js <port>  (or set EMULATOR_PORT)\n');
  process.exit(2);
}

// storeTimeout is in seconds; long enough that nothing expires during a test session.
const server = new TelegramServer({ port, host: '127.0.0.1', storeTimeout: 600 });
const FORCED_EXIT_MS = 3000;
let stopping = false;

async function shutdown(reason) {
  if (stopping) {
    return;
  }
  stopping = true;
  // http-shutdown waits for in-flight requests; never let that hang the test run.
  setTimeout(() => process.exit(0), FORCED_EXIT_MS).unref();
  try {
    await server.stop();
  } catch (error) {
    process.stderr.write(`emulator stop failed after ${reason}: ${error}\n`);
  }
  process.exit(0);
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

if (process.env.EMULATOR_EXIT_WITH_PARENT === '1') {
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.resume();
}

server.start()
  .then(() => {
    process.stdout.write(`EMULATOR READY ${port}\n`);
  })
  .catch((error) => {
    process.stderr.write(`emulator failed to start on 127.0.0.1:${port}: ${error}\n`);
    process.exit(1);
  });
