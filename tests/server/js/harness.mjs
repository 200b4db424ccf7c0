// Shared by the end-to-end tests of `mcmoe serve` in this folder: arguments, skipping,
// starting a server on a free loopback port, and always stopping it again.
//
// Usage of a test: node TEST.mjs [MCMOE_BINARY [SOURCE_DIR]]
//   (or the environment: MCMOE_BIN, MCMOE_SOURCE_DIR; MCMOE_TEST_MODEL overrides the model).
// Exit codes: 0 passed, 1 failed, 77 skipped (CTest's SKIP_RETURN_CODE).
import {spawn, execFile} from 'node:child_process';
import {existsSync} from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

export const here = path.dirname(fileURLToPath(import.meta.url));
export const sourceDir = path.resolve(process.argv[3] ?? process.env.MCMOE_SOURCE_DIR ?? path.join(here, '../../..'));
export const mcmoe = path.resolve(process.argv[2] ?? process.env.MCMOE_BIN ?? path.join(sourceDir, 'build/mcmoe'));
export const model = path.resolve(process.env.MCMOE_TEST_MODEL ?? path.join(sourceDir, 'models/mixtral-tiny-q4_0.gguf'));

export const SKIP = 77;
const servers = new Set();
const t0 = performance.now();

export class TestFailure extends Error {}

export function fail(message) {
  throw new TestFailure(message);
}

export function check(condition, message) {
  if (!condition) fail(message);
}

export function equalText(got, want, what) {
  if (got !== want) fail(`${what}:\n    got  ${JSON.stringify(got)}\n    want ${JSON.stringify(want)}`);
}

export function log(message) {
  console.log(`[${((performance.now() - t0) / 1000).toFixed(1).padStart(5)} s] ${message}`);
}

export function skip(reason) {
  console.log(`SKIP: ${reason}`);
  process.exit(SKIP);
}

// node_modules of this folder, installed by `npm ci` (scripts/setup.sh does it).
export function requireNodeModules(...packages) {
  for (const p of packages) {
    if (!existsSync(path.join(here, 'node_modules', p, 'package.json')))
      skip(`${path.join(here, 'node_modules', p)} is missing; run: (cd ${here} && npm ci)`);
  }
}

function killAll(signal) {
  for (const s of servers) {
    try {
      s.child.kill(signal);
    } catch {}
  }
}

// Runs main() with an overall time limit; the servers it started are stopped however it ends
// (success, a failed check, an exception, the time limit, Ctrl-C or CTest's SIGTERM).
// MCMOE_TEST_TIMEOUT_S overrides the limit (CTest's own is 300 s).
export async function runTest(name, main, {timeoutSeconds = Number(process.env.MCMOE_TEST_TIMEOUT_S) || 240} = {}) {
  process.on('exit', () => killAll('SIGKILL'));  // last resort; normally they are stopped already
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.on(sig, () => {
      console.error(`FAIL: ${name}: interrupted by ${sig}`);
      killAll('SIGKILL');
      process.exit(1);
    });
  }
  const timer = setTimeout(() => {
    console.error(`FAIL: ${name}: still running after ${timeoutSeconds} s (overall time limit)`);
    for (const s of servers) console.error(s.tail());
    killAll('SIGKILL');
    process.exit(1);
  }, timeoutSeconds * 1000);
  let code = 0;
  try {
    check(existsSync(mcmoe), `the mcmoe binary ${mcmoe} does not exist (pass it as the first argument)`);
    check(existsSync(model), `the model ${model} does not exist`);
    await main();
    log(`PASS: ${name}`);
  } catch (e) {
    code = 1;
    console.error(`FAIL: ${name}: ${e instanceof TestFailure ? e.message : (e?.stack ?? e)}`);
    for (const s of servers) console.error(s.tail());
  }
  clearTimeout(timer);
  for (const s of [...servers]) await s.stop();
  process.exit(code);
}

// A loopback port free a moment ago (the server could still lose it to another process;
// startServer retries then).
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const {port} = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = ms => new Promise(r => setTimeout(r, ms));

// Starts `mcmoe serve -m MODEL --port P ...args` and waits until GET /health answers.
export async function startServer(args = [], {attempts = 3} = {}) {
  for (let attempt = 1; ; ++attempt) {
    const port = await freePort();
    const argv = ['serve', '-m', model, '--port', String(port), ...args];
    const child = spawn(mcmoe, argv, {stdio: ['ignore', 'pipe', 'pipe']});
    let output = '';
    const keep = d => {
      output = (output + d).slice(-8000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let exited = null;
    const exit = new Promise(resolve => child.on('exit', (code, signal) => {
      exited = {code, signal};
      resolve(exited);
    }));
    child.on('error', e => keep(`spawn error: ${e.message}\n`));
    const s = {
      port,
      url: `http://127.0.0.1:${port}`,
      child,
      tail: () => `--- mcmoe ${argv.join(' ')} (${exited ? `exited ${JSON.stringify(exited)}` : 'running'}), last output:\n${output.trimEnd()}\n---`,
      // SIGTERM, then SIGKILL if it has not stopped within 10 s. Returns how it exited.
      stop: async () => {
        if (!exited) {
          child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), 10000);
          await exit;
          clearTimeout(t);
        }
        servers.delete(s);  // only now: killAll must reach a server that is still stopping
        return exited;
      },
    };
    servers.add(s);
    const deadline = performance.now() + 30000;
    while (!exited && performance.now() < deadline) {
      try {
        const r = await fetch(`${s.url}/health`);
        if (r.ok && (await r.json()).status === 'ok') return s;
      } catch {}
      await sleep(100);
    }
    await s.stop();
    if (exited?.code !== 0 && /cannot listen/.test(output) && attempt < attempts) continue;  // lost the port
    fail(`mcmoe serve did not become healthy within 30 s\n${s.tail()}`);
  }
}

// POST a JSON body; returns the parsed answer, failing on a non-2xx status.
export async function postJson(url, body, headers = {}) {
  const r = await fetch(url, {method: 'POST', headers: {'Content-Type': 'application/json', ...headers}, body: JSON.stringify(body)});
  const text = await r.text();
  check(r.ok, `POST ${url} ${JSON.stringify(body)}: HTTP ${r.status}: ${text}`);
  return JSON.parse(text);
}

// Prometheus text of GET /metrics as {name: value}.
export async function metrics(url, headers = {}) {
  const r = await fetch(`${url}/metrics`, {headers});
  check(r.ok, `GET ${url}/metrics: HTTP ${r.status}`);
  const out = {};
  for (const line of (await r.text()).split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)\s+(\S+)$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

// Runs the mcmoe binary; resolves {code, stdout, stderr} (no throw on a non-zero exit).
export function runMcmoe(args, {timeoutMs = 60000} = {}) {
  return new Promise(resolve => {
    execFile(mcmoe, args, {timeout: timeoutMs, maxBuffer: 16 << 20}, (err, stdout, stderr) => {
      resolve({code: err ? (err.code ?? 1) : 0, stdout, stderr});
    });
  });
}
