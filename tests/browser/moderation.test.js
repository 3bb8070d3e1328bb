// Moderation in the web client: an owner switches on the moderated setting and bans a
// member from the members panel; the member sees the setting live, gets the translated
// error when posting, and is removed by the ban.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Server, launchBrowser, openPage, registerInPage } from './support.js';

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

test('owner moderates and bans from members panel', async () => {
  const owner = await openPage(browser);
  await registerInPage(owner.page, server.url, 'rhea', 'Rhea');
  const member = await openPage(browser);
  await registerInPage(member.page, server.url, 'tomas', 'Tomas');

  await owner.page.getByRole('button', { name: 'New room' }).click();
  await owner.page.getByLabel('Room name').fill('stage');
  await owner.page.locator('#room-visibility').selectOption('public');
  await owner.page.locator('dialog button[type=submit]').click();
  await owner.page.locator('.chat-header h2', { hasText: '#stage' }).waitFor();
  await member.page.getByRole('button', { name: 'Join #stage' }).click();
  await member.page.locator('.chat-header h2', { hasText: '#stage' }).waitFor();

  // Members see no moderation controls.
  await member.page.locator('.online-button').click();
  await member.page.locator('.members .member', { hasText: 'Rhea' }).waitFor();
  assert.equal(await member.page.locator('.room-settings').count(), 0);
  assert.equal(await member.page.getByRole('button', { name: 'Ban' }).count(), 0);

  await owner.page.locator('.online-button').click();
  await owner.page.getByLabel('Moderated: only the owner and admins may post').check();
  // The setting reaches the member live, as room:updated and a system message.
  await member.page.locator('.chat-header .badge', { hasText: 'Moderated' }).waitFor();
  await member.page.getByText('Rhea changed the room settings: only the owner and admins may post').waitFor();

  const composer = member.page.locator('.composer textarea');
  await composer.fill('can anyone hear me');
  await composer.press('Enter');
  // A rejected message stays in the log as not sent, with the translated reason.
  await member.page.getByText('This room is moderated: only the owner and admins may post.').first().waitFor();

  owner.page.once('dialog', (dialog) => dialog.accept('off topic'));
  await owner.page.locator('.members .member', { hasText: 'Tomas' }).getByRole('button', { name: 'Ban' }).click();
  await owner.page.getByText('Tomas was banned by Rhea: off topic').waitFor();
  await owner.page.locator('.bans .member', { hasText: 'Tomas' }).waitFor();
  // The banned member's client drops the room.
  await member.page.locator('.chat-header h2', { hasText: '#stage' }).waitFor({ state: 'detached' });

  await owner.page.locator('.bans .member', { hasText: 'Tomas' }).getByRole('button', { name: 'Lift ban' }).click();
  await owner.page.getByText('Rhea lifted the ban on Tomas').waitFor();
  assert.deepEqual(owner.problems, []);
});
