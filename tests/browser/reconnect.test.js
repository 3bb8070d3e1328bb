// Network trouble: after the server restarts, the page shows the reconnecting banner,
// reconnects, and shows every message sent while it was away exactly once.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { PASSWORD, Server, launchBrowser, openPage, registerInPage, sendInPage, shownTexts } from './support.js';

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

test('server restart: page reconnects and catches up once', async () => {
  const { page, problems } = await openPage(browser);
  await registerInPage(page, server.url, 'watcher', 'Watcher');
  const writer = await server.api('POST', '/auth/register', { username: 'writer', password: PASSWORD });
  const lobby = (await server.api('GET', '/rooms', undefined, writer.token))
    .find((/** @type {any} */ room) => room.name === 'lobby');

  await sendInPage(page, 'before the restart');
  const early = await server.api('POST', `/rooms/${lobby.id}/messages`, { body: 'to be edited' }, writer.token);
  await page.locator('.msg .text', { hasText: 'to be edited' }).waitFor();

  // Stop the server. The page must notice and show the banner.
  await server.stop();
  await page.locator('.banner', { hasText: 'Connection lost. Reconnecting…' }).waitFor();

  // A message typed while offline stays pending and is resent after the reconnect.
  await page.locator('.composer textarea').fill('typed while offline');
  await page.locator('.composer textarea').press('Enter');
  await page.locator('.msg.pending', { hasText: 'typed while offline' }).waitFor();

  // While the page is away, the same data directory serves on another port, where the
  // writer posts, edits and recalls. The page cannot reach that port, so it learns of
  // these only by catching up.
  const elsewhere = await Server.start({ dataDir: server.dataDir });
  const away = ['sent while away 1', 'sent while away 2', 'sent while away 3'];
  for (const body of away) {
    await elsewhere.api('POST', `/rooms/${lobby.id}/messages`, { body }, writer.token);
  }
  await elsewhere.api('PATCH', `/messages/${early.id}`, { body: 'edited while away' }, writer.token);
  const recalled = await elsewhere.api('POST', `/rooms/${lobby.id}/messages`, { body: 'recalled while away' }, writer.token);
  await elsewhere.api('DELETE', `/messages/${recalled.id}`, undefined, writer.token);
  await elsewhere.stop();

  await server.spawn();
  await page.locator('.banner').waitFor({ state: 'hidden', timeout: 30_000 });
  await page.locator('.msg .text', { hasText: 'sent while away 3' }).waitFor();
  await page.locator('.msg:not(.pending) .text', { hasText: 'typed while offline' }).waitFor();

  const texts = await shownTexts(page);
  for (const text of ['before the restart', ...away, 'edited while away', 'typed while offline']) {
    assert.equal(texts.filter((shown) => shown === text).length, 1, `"${text}" is shown once in ${JSON.stringify(texts)}`);
  }
  assert.ok(!texts.includes('to be edited'), 'the edit made while away is applied');
  assert.ok(!texts.includes('recalled while away'), 'the recall made while away is applied');
  await page.locator('.msg.system', { hasText: 'Writer recalled a message' }).waitFor();
  assert.equal(await page.locator('.msg.pending').count(), 0);

  // Each message sits in seq order, once.
  const seqs = await page.locator('.messages .msg[data-seq]').evaluateAll((nodes) => nodes.map((n) => Number(n.getAttribute('data-seq'))));
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
  assert.equal(new Set(seqs).size, seqs.length);
  // Chromium logs each refused WebSocket attempt while the server is down.
  const unexpected = problems.filter((line) => !/WebSocket connection to .* failed/.test(line));
  assert.deepEqual(unexpected, []);
});
