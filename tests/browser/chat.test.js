// Two people in two browser contexts: registering, joining a room, messages in order,
// typing, members, edit and recall seen by the other person, and composer keys.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  Server, launchBrowser, openPage, registerInPage, screenshot, sendInPage, shownTexts,
} from './support.js';

/** @type {Server} */ let server;
/** @type {import('playwright-core').Browser} */ let browser;
/** @type {Awaited<ReturnType<typeof openPage>>} */ let alice;
/** @type {Awaited<ReturnType<typeof openPage>>} */ let bob;

before(async () => {
  server = await Server.start();
  browser = await launchBrowser();
  alice = await openPage(browser);
  bob = await openPage(browser);
});

after(async () => {
  await browser?.close();
  await server?.close();
});

test('two users join a room and see messages in order', async () => {
  await registerInPage(alice.page, server.url, 'alice', 'Alice');
  await alice.page.getByRole('button', { name: 'New room' }).click();
  await alice.page.getByLabel('Room name').fill('team');
  await alice.page.getByLabel('Topic (optional)').fill('Release planning');
  await alice.page.locator('dialog button[type=submit]').click();
  await alice.page.locator('.chat-header h2', { hasText: '#team' }).waitFor();

  await registerInPage(bob.page, server.url, 'bob', 'Bob');
  await bob.page.getByRole('button', { name: 'Join #team' }).click();
  await bob.page.locator('.chat-header h2', { hasText: '#team' }).waitFor();
  await alice.page.locator('.msg.system', { hasText: 'Bob joined the room' }).waitFor();

  const sent = [];
  for (let i = 1; i <= 3; i++) {
    await sendInPage(alice.page, `alice says ${i}`);
    sent.push(`alice says ${i}`);
    await sendInPage(bob.page, `bob says ${i}`);
    sent.push(`bob says ${i}`);
  }
  await bob.page.locator('.msg .text', { hasText: 'bob says 3' }).waitFor();
  await alice.page.locator('.msg .text', { hasText: 'bob says 3' }).waitFor();
  assert.deepEqual(await shownTexts(alice.page), sent);
  assert.deepEqual(await shownTexts(bob.page), sent);

  await screenshot(alice.page, 'chat-desktop-en');
  assert.deepEqual(alice.problems, []);
  assert.deepEqual(bob.problems, []);
});

test('typing indicator and online members are shown', async () => {
  // Typing is forwarded at most once per 2 s per user, and Bob typed moments ago, so
  // he keeps typing, as a person would, until the hint shows on Alice's page.
  const hint = alice.page.locator('.typing', { hasText: 'Bob is typing…' });
  for (let key = 0; key < 20 && !(await hint.isVisible()); key++) {
    await bob.page.locator('.composer textarea').press('x');
    await hint.waitFor({ timeout: 500 }).catch(() => {});
  }
  await hint.waitFor();
  await bob.page.locator('.composer textarea').fill('');

  await alice.page.locator('.online-button', { hasText: '2 online' }).click();
  const bobRow = alice.page.locator('.members .member', { hasText: 'Bob' });
  await bobRow.locator('.presence', { hasText: 'online' }).waitFor();
  await screenshot(alice.page, 'members-desktop-en');
  await alice.page.locator('.members button', { hasText: 'Close' }).click();
});

test('direct message reaches the peer', async () => {
  await alice.page.locator('.online-button').click();
  await alice.page.locator('.members .member', { hasText: 'Bob' }).getByRole('button', { name: 'Message' }).click();
  await alice.page.locator('.chat-header h2', { hasText: 'Bob' }).waitFor();
  await sendInPage(alice.page, 'just between us');

  // Bob's list names the direct room after Alice, and he reads the message there.
  const direct = bob.page.locator('.rooms.direct .room-link', { hasText: 'Alice' });
  await direct.locator('.badge').waitFor();
  await direct.click();
  await bob.page.locator('.msg .text', { hasText: 'just between us' }).waitFor();
  assert.deepEqual(await shownTexts(bob.page), ['just between us']);

  await alice.page.locator('.room-link', { hasText: '#team' }).click();
  await bob.page.locator('.room-link', { hasText: '#team' }).click();
  await alice.page.locator('.chat-header h2', { hasText: '#team' }).waitFor();
  await bob.page.locator('.chat-header h2', { hasText: '#team' }).waitFor();
  // The member list stays open across rooms until closed.
  await alice.page.locator('.members button', { hasText: 'Close' }).click();
});

test('edit and recall show for the other user', async () => {
  const ownMessage = alice.page.locator('.msg.own', { hasText: 'alice says 2' });
  await ownMessage.hover();
  await ownMessage.getByRole('button', { name: 'Edit' }).click();
  const composer = alice.page.locator('.composer textarea');
  await composer.fill('alice says 2, corrected');
  await composer.press('Enter');

  const edited = bob.page.locator('.msg', { hasText: 'alice says 2, corrected' });
  await edited.locator('.edited', { hasText: '(edited)' }).waitFor();

  const toRecall = alice.page.locator('.msg.own', { hasText: 'alice says 3' });
  await toRecall.hover();
  await toRecall.getByRole('button', { name: 'Recall' }).click();
  await bob.page.locator('.msg.system', { hasText: 'Alice recalled a message' }).waitFor();
  await alice.page.locator('.msg.system', { hasText: 'Alice recalled a message' }).waitFor();
  assert.equal(await bob.page.locator('.msg .text', { hasText: 'alice says 3' }).count(), 0);
  assert.equal(await alice.page.locator('.msg .text', { hasText: 'alice says 3' }).count(), 0);

  // Bob may recall only his own messages: Alice's show no buttons for him.
  assert.equal(await bob.page.locator('.msg:not(.own) button').count(), 0);
});

test('shift enter adds a line and IME enter never sends', async () => {
  const composer = bob.page.locator('.composer textarea');
  await composer.fill('first line');
  await composer.press('Shift+Enter');
  await composer.pressSequentially('second line');
  assert.equal(await composer.inputValue(), 'first line\nsecond line');

  // An Enter that confirms an input method candidate arrives as a keydown with
  // isComposing set (keyCode 229 in some browsers); neither may send.
  const sentWhileComposing = await composer.evaluate((node) => {
    const composing = new KeyboardEvent('keydown', { key: 'Enter', isComposing: true, bubbles: true, cancelable: true });
    const legacy = new KeyboardEvent('keydown', { key: 'Enter', keyCode: 229, bubbles: true, cancelable: true });
    node.dispatchEvent(composing);
    node.dispatchEvent(legacy);
    return composing.defaultPrevented || legacy.defaultPrevented;
  });
  assert.equal(sentWhileComposing, false);
  assert.equal(await composer.inputValue(), 'first line\nsecond line');

  await composer.press('Enter');
  await alice.page.locator('.msg .text', { hasText: 'second line' }).waitFor();
  const shown = await alice.page.locator('.msg .text', { hasText: 'second line' }).innerText();
  assert.equal(shown, 'first line\nsecond line');
});

test('unread count shows for a room in the background', async () => {
  await alice.page.locator('.room-link', { hasText: '#lobby' }).click();
  await alice.page.locator('.chat-header h2', { hasText: '#lobby' }).waitFor();
  await sendInPage(bob.page, 'news in team');
  const badge = alice.page.locator('.room-link', { hasText: '#team' }).locator('.badge');
  await badge.waitFor();
  assert.equal(await badge.innerText(), '1');
  await alice.page.locator('.room-link', { hasText: '#team' }).click();
  await alice.page.locator('.msg .text', { hasText: 'news in team' }).waitFor();
  assert.equal(await badge.count(), 0);
});
