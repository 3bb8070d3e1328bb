// History: the newest page on open, older pages as the reader scrolls up.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { PASSWORD, Server, launchBrowser, openPage, shownTexts } from './support.js';

const COUNT = 130;

/** @type {Server} */ let server;
/** @type {import('playwright-core').Browser} */ let browser;

before(async () => {
  // Seeding sends many messages at once, beyond the default send budget.
  server = await Server.start({ args: ['--send-burst=1000', '--send-rate=1000'] });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test('history loads on scroll', async () => {
  const writer = await server.api('POST', '/auth/register', { username: 'writer', password: PASSWORD });
  const me = await server.api('GET', '/me', undefined, writer.token);
  const rooms = await server.api('GET', '/rooms', undefined, writer.token);
  const lobby = rooms.find((/** @type {any} */ room) => room.name === 'lobby');
  assert.ok(lobby, `no lobby in ${JSON.stringify(rooms)} for ${me.id}`);
  const expected = [];
  for (let i = 1; i <= COUNT; i++) {
    const body = `message ${String(i).padStart(3, '0')}`;
    await server.api('POST', `/rooms/${lobby.id}/messages`, { body }, writer.token);
    expected.push(body);
  }

  const reader = await openPage(browser);
  await reader.page.goto(server.url);
  await reader.page.getByRole('tab', { name: 'Sign in' }).click();
  await reader.page.locator('#field-username').fill('writer');
  await reader.page.locator('#field-password').fill(PASSWORD);
  await reader.page.locator('#auth-form button[type=submit]').click();
  await reader.page.locator('.msg .text', { hasText: `message ${COUNT}` }).waitFor();

  const firstPage = await shownTexts(reader.page);
  assert.equal(firstPage.length, 50, 'the newest page holds 50 messages');
  assert.deepEqual(firstPage, expected.slice(-50));

  // Scroll to the top until the beginning of the room shows, bounded in rounds.
  const start = reader.page.locator('.log-start', { hasText: 'This is the beginning of the room.' });
  for (let round = 0; round < 10 && !(await start.isVisible()); round++) {
    const before = (await shownTexts(reader.page)).length;
    await reader.page.locator('.log').evaluate((log) => { log.scrollTop = 0; });
    await reader.page.waitForFunction(
      (count) => document.querySelectorAll('.messages .msg:not(.system)').length > count
        || document.querySelector('.log-start')?.textContent === 'This is the beginning of the room.',
      before,
    );
  }
  await start.waitFor();
  assert.deepEqual(await shownTexts(reader.page), expected);
  assert.deepEqual(reader.problems, []);
});
