// The chat page at / of mcmoe serve, in headless Chromium (Debian's `chromium`, driven by
// puppeteer-core, pinned in package.json): type a message, send it, and the streamed
// assistant bubble must equal the non-streaming API's reply for the same conversation at the
// page's settings (temperature 0, so greedy); then a second turn, which sends the history.
//
// Usage: node tests/server/js/web_page.test.mjs [MCMOE_BINARY [SOURCE_DIR]]
// MCMOE_SCREENSHOT=1 saves bench/server_page.png (MCMOE_SCREENSHOT=PATH.png: there instead).
// MCMOE_CHROMIUM overrides /usr/bin/chromium. Exits 77 (skipped) without chromium or without
// `npm ci` in tests/server/js.
import {existsSync, mkdirSync} from 'node:fs';
import path from 'node:path';

import {check, equalText, log, postJson, requireNodeModules, runTest, skip, sourceDir, startServer} from './harness.mjs';

const chromium = process.env.MCMOE_CHROMIUM ?? '/usr/bin/chromium';
if (!existsSync(chromium)) skip(`${chromium} is missing (apt-get install chromium; scripts/setup.sh does it)`);
requireNodeModules('puppeteer-core');
const {default: puppeteer} = await import('puppeteer-core');

const MAX_TOKENS = 48;

// Sends one message the way a person does (type, click Send) and waits for the reply bubble.
async function say(page, text, turn) {
  await page.type('#input', text);
  await page.click('#send');
  const bubble = `#log > .msg:nth-child(${2 * turn})`;  // user, assistant, user, assistant, ...
  await page.waitForSelector(`${bubble}[data-done="1"]`, {timeout: 60000});
  const {cls, reply} = await page.$eval(bubble, el => ({cls: el.className, reply: el.textContent}));
  check(cls === 'msg assistant', `turn ${turn}: the reply bubble is "${cls}": ${reply}`);
  check(reply.length > 0, `turn ${turn}: the assistant bubble is empty`);
  return reply;
}

await runTest('web_page', async () => {
  const server = await startServer(['--parallel', '2', '--ctx-size', '2048']);
  log(`server on ${server.url}`);
  // Signals are the harness's (it stops the server and exits); puppeteer-core still kills the
  // browser when this process exits, however it exits.
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,  // puppeteer passes --headless=new
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
    handleSIGINT: false, handleSIGTERM: false, handleSIGHUP: false,
  });
  log(`${chromium} ${browser.process().spawnargs.filter(a => /headless|sandbox/.test(a)).join(' ')}`);
  try {
    log(`browser ${await browser.version()}`);
    const page = await browser.newPage();
    await page.setViewport({width: 1000, height: 640});
    const problems = [];
    page.on('pageerror', e => problems.push(`page error: ${e.message}`));
    page.on('console', m => {
      // An HTTP error's console line names no URL; the response handler below reports it.
      if (m.type() === 'error' && !/^Failed to load resource/.test(m.text())) problems.push(`console error: ${m.text()}`);
    });
    page.on('response', r => {
      // The browser asks for /favicon.ico by itself; the page does not link one.
      if (r.status() >= 400 && new URL(r.url()).pathname !== '/favicon.ico') problems.push(`HTTP ${r.status()}: ${r.url()}`);
    });
    page.on('requestfailed', r => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));

    await page.goto(`${server.url}/`, {waitUntil: 'load'});
    // The header names the model once GET /v1/models has answered.
    await page.waitForFunction(() => document.getElementById('model').textContent.length > 0, {timeout: 10000});
    const modelName = await page.$eval('#model', el => el.textContent);
    await page.$eval('#temp', el => (el.value = ''));
    await page.type('#temp', '0');
    await page.$eval('#max', el => (el.value = ''));
    await page.type('#max', String(MAX_TOKENS));
    // The page's settings as the page itself reads them.
    const settings = await page.evaluate(() => ({
      temperature: parseFloat(document.getElementById('temp').value),
      max_tokens: parseInt(document.getElementById('max').value),
    }));
    check(settings.temperature === 0 && settings.max_tokens === MAX_TOKENS, `page settings ${JSON.stringify(settings)}`);

    const messages = [];
    const turns = ['Tell me about the king.', 'And what of the queen?'];
    for (let i = 0; i < turns.length; ++i) {
      const t = performance.now();
      const reply = await say(page, turns[i], i + 1);
      const seconds = (performance.now() - t) / 1000;
      messages.push({role: 'user', content: turns[i]});
      const api = await postJson(`${server.url}/v1/chat/completions`, {model: modelName, messages, ...settings});
      equalText(reply, api.choices[0].message.content, `turn ${i + 1}: the page's streamed reply vs the non-streaming API`);
      messages.push({role: 'assistant', content: reply});
      log(`ok   turn ${i + 1} (${seconds.toFixed(2)} s): page = API: ${JSON.stringify(reply)}`);
    }
    check(problems.length === 0, `the page reported problems:\n  ${problems.join('\n  ')}`);

    const shot = process.env.MCMOE_SCREENSHOT;
    if (shot) {
      const file = /\.png$/i.test(shot) ? path.resolve(shot) : path.join(sourceDir, 'bench/server_page.png');
      mkdirSync(path.dirname(file), {recursive: true});
      await page.screenshot({path: file, fullPage: true});
      log(`screenshot: ${file}`);
    }
  } finally {
    await browser.close();
  }
  const how = await server.stop();
  check(how.code === 0, `mcmoe serve exited ${JSON.stringify(how)} on SIGTERM, expected 0`);
});
