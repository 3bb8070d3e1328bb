// A guest with a nickname joins the lobby and talks with a registered user; the same
// screens at phone width.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  Server, launchBrowser, openPage, registerInPage, screenshot, sendInPage, shownTexts,
} from './support.js';

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

test('guest joins lobby and chats', async () => {
  const host = await openPage(browser);
  await registerInPage(host.page, server.url, 'carol', 'Carol');

  const guest = await openPage(browser, { width: 390, height: 844 });
  await guest.page.goto(server.url);

  // Keyboard only: the arrow keys move between the tabs, Tab reaches the nickname field,
  // and Enter submits.
  await guest.page.getByRole('tab', { name: 'Sign in' }).focus();
  await guest.page.keyboard.press('ArrowLeft');
  const guestTab = guest.page.getByRole('tab', { name: 'Guest' });
  assert.equal(await guestTab.getAttribute('aria-selected'), 'true');
  assert.equal(await guestTab.evaluate((node) => node === document.activeElement), true);
  await screenshot(guest.page, 'guest-sign-in-phone-en');
  await guest.page.keyboard.press('Tab');
  assert.equal(await guest.page.evaluate(() => document.activeElement?.id), 'field-nickname');
  await guest.page.keyboard.type('Visitor');
  await guest.page.keyboard.press('Enter');

  // At phone width the lobby opens full screen; the room list is one step back.
  await guest.page.locator('.chat-header h2', { hasText: '#lobby' }).waitFor();
  await host.page.locator('.msg.system', { hasText: 'Visitor joined the room' }).waitFor();
  await sendInPage(guest.page, 'hello from a guest');
  await host.page.locator('.msg', { hasText: 'hello from a guest' }).locator('.name', { hasText: 'Visitor' }).waitFor();
  await sendInPage(host.page, 'welcome, visitor');
  await guest.page.locator('.msg .text', { hasText: 'welcome, visitor' }).waitFor();
  assert.deepEqual(await shownTexts(guest.page), ['hello from a guest', 'welcome, visitor']);
  await screenshot(guest.page, 'chat-phone-en');

  await guest.page.getByRole('button', { name: 'Back to rooms' }).click();
  await guest.page.locator('.sidebar').waitFor();
  await screenshot(guest.page, 'rooms-phone-en');

  // Guests cannot create rooms: the server's refusal is shown as a sentence.
  await guest.page.getByRole('button', { name: 'New room' }).click();
  await guest.page.getByLabel('Room name').fill('guestroom');
  await guest.page.locator('dialog button[type=submit]').click();
  await guest.page.locator('dialog .error', { hasText: 'Guests cannot do this. Register to continue.' }).waitFor();

  assert.deepEqual(host.problems, []);
  assert.deepEqual(guest.problems, []);
});
