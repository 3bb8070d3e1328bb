// User text is only ever text: markup and script in messages stay literal and run
// nothing, links are limited to http, https and mailto, names are bidi-isolated, and the
// page runs under the server's Content-Security-Policy.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Server, launchBrowser, openPage, registerInPage, sendInPage } from './support.js';

/** @type {Server} */ let server;
/** @type {import('playwright-core').Browser} */ let browser;

before(async () => {
  server = await Server.start();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test('HTML and script in a message stay literal text', async () => {
  const sender = await openPage(browser);
  const reader = await openPage(browser);
  await registerInPage(sender.page, server.url, 'mallory', 'Mallory');
  await registerInPage(reader.page, server.url, 'reader', 'Reader');

  const hostile = [
    '<img src=x onerror="window.__ran = 1">',
    '<script>window.__ran = 2</script>',
    '<b>bold?</b> <a href="javascript:window.__ran=3">click</a>',
    'javascript:window.__ran=4 and data:text/html,<script>1</script>',
  ].join('\n');
  await sendInPage(sender.page, hostile);

  const shown = reader.page.locator('.msg .text', { hasText: 'onerror' });
  await shown.waitFor();
  assert.equal(await shown.innerText(), hostile);
  assert.equal(await shown.locator('img, script, b, a').count(), 0, 'no element was created from the text');
  assert.equal(await reader.page.evaluate(() => /** @type {any} */ (window).__ran), undefined);
  assert.equal(await sender.page.evaluate(() => /** @type {any} */ (window).__ran), undefined);
  assert.deepEqual(sender.problems, []);
  assert.deepEqual(reader.problems, []);
});

test('only http https and mailto become links', async () => {
  const { page, problems } = await openPage(browser);
  await registerInPage(page, server.url, 'linker', 'Linker');
  await sendInPage(page, 'see https://example.com/a?b=1, mail mailto:team@example.com or ftp://example.com/x');
  const text = page.locator('.msg .text', { hasText: 'ftp://' });
  const links = await text.locator('a').evaluateAll((nodes) => nodes.map((a) => ({
    href: a.getAttribute('href'), rel: a.getAttribute('rel'), text: a.textContent,
  })));
  assert.deepEqual(links, [
    { href: 'https://example.com/a?b=1', rel: 'noopener noreferrer nofollow', text: 'https://example.com/a?b=1' },
    { href: 'mailto:team@example.com', rel: 'noopener noreferrer nofollow', text: 'mailto:team@example.com' },
  ]);
  assert.deepEqual(problems, []);
});

test('names are isolated from bidi overrides', async () => {
  const { page, problems } = await openPage(browser);
  await registerInPage(page, server.url, 'arabic', 'سلام');
  await sendInPage(page, 'names stay in place');
  const name = page.locator('.msg', { hasText: 'names stay in place' }).locator('.meta .name');
  assert.equal(await name.evaluate((node) => node.tagName), 'BDI');
  assert.equal(await name.evaluate((node) => getComputedStyle(node).unicodeBidi), 'isolate');
  const roomName = page.locator('.room-link .room-name').first();
  assert.equal(await roomName.evaluate((node) => getComputedStyle(node).unicodeBidi), 'isolate');

  // A right-to-left override in a display name is refused by the server, and the
  // page shows the reason.
  await page.locator('.profile-button').click();
  await page.getByLabel('Display name').fill('\u202Eevil');
  await page.getByRole('button', { name: 'Save name' }).click();
  await page.locator('dialog .status', { hasText: 'Names are 1 to 64 characters' }).waitFor();
  assert.deepEqual(problems, []);
});

test('page is served under a strict CSP', async () => {
  const response = await fetch(`${server.url}/`);
  const policy = response.headers.get('content-security-policy') ?? '';
  assert.match(policy, /script-src 'self'/);
  assert.doesNotMatch(policy, /unsafe-inline|unsafe-eval/);
  assert.match(response.headers.get('content-type') ?? '', /^text\/html/);

  const script = await fetch(`${server.url}/assets/app.js`);
  assert.match(script.headers.get('content-type') ?? '', /javascript/);
  const etag = script.headers.get('etag');
  assert.ok(etag, 'assets carry an ETag');
  const again = await fetch(`${server.url}/assets/app.js`, { headers: { 'if-none-match': etag } });
  assert.equal(again.status, 304);
  assert.equal((await fetch(`${server.url}/assets/../Cargo.toml`)).status, 404);
  assert.equal((await fetch(`${server.url}/assets/missing.js`)).status, 404);
});
