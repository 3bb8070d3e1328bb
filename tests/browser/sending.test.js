// Sending: a message shows at once as pending, and one the server rejects shows the
// reason and a retry button that sends it again with the same client_msg_id.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Server, launchBrowser, openPage, registerInPage, sendInPage, shownTexts } from './support.js';

/** @type {Server} */ let server;
/** @type {import('playwright-core').Browser} */ let browser;

before(async () => {
  // One message at once, then one every 4 seconds: the second quick send is rate limited.
  server = await Server.start({ args: ['--send-burst=1', '--send-rate=0.25'] });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test('rejected send shows retry and succeeds', async () => {
  const { page, problems } = await openPage(browser);
  await registerInPage(page, server.url, 'quick', 'Quick');
  await sendInPage(page, 'first message');

  const composer = page.locator('.composer textarea');
  await composer.fill('second message');
  await composer.press('Enter');
  const failed = page.locator('.msg.pending.failed', { hasText: 'second message' });
  await failed.locator('.status', { hasText: 'Not sent: Too many requests. Wait a moment and try again.' }).waitFor();

  // Retry until the send budget has a token again, bounded in attempts.
  const confirmed = page.locator('.msg:not(.pending) .text', { hasText: 'second message' });
  for (let attempt = 0; attempt < 20 && !(await confirmed.isVisible()); attempt++) {
    const retry = failed.getByRole('button', { name: 'Retry' });
    if (await retry.isVisible()) await retry.click();
    await confirmed.waitFor({ timeout: 1000 }).catch(() => {});
  }
  await confirmed.waitFor();
  assert.deepEqual(await shownTexts(page), ['first message', 'second message']);
  assert.equal(await page.locator('.msg.pending').count(), 0);
  assert.deepEqual(problems, []);
});
